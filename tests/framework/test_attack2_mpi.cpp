// Attacks on pools across MPI ranks from a host program (under a real Open
// MPI launcher on this one machine: three ranks).
#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.hpp"

namespace mathpool::test {
namespace {

// A host program that opens a second pool on its MpiJob while the first is
// open (mathpool/mpi.hpp: the job "must outlive every pool made from it";
// the agents serve "one local pool for each pool rank 0 opens"). Either the
// second pool works or its constructor throws; the job must not hang. Run
// under timeout(1): 20 s.
TEST(Attack2Mpi, ASecondPoolWhileTheFirstIsOpenWorksOrIsRefused) {
  const std::string plugins = std::filesystem::path(TESTKIT_PLUGIN).parent_path().string();
  const CommandResult r =
      run_program("/usr/bin/timeout", {"20", MPIRUN, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
                                       "-n", "3", MPI_TWO_POOLS, plugins});
  EXPECT_NE(r.exit_code, 124) << "the job hung (killed by timeout after 20 s); its output:\n" << r.out << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("first open"), std::string::npos) << r.out;
  EXPECT_TRUE(r.out.find("second ok 1") != std::string::npos || r.out.find("second refused") != std::string::npos)
      << "the second pool neither worked nor was refused:\n" << r.out << r.err;
  EXPECT_NE(r.out.find("first ok 1"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace mathpool::test
