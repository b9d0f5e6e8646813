// mpi_empty: joins and leaves an MPI job and does nothing else: the launcher's
// and MPI's own start-up cost, the floor under any `mathpool run --mpi`.
#include <mpi.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Finalize();
  return 0;
}
