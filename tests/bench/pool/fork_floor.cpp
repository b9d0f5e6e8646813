// fork_floor: the machine's floor for a process per task. Forks N children
// of this minimal process that exit at once, reaping each, and prints the
// seconds per child. A task under isolation: task cannot cost less.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    const pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) _exit(0);
    int status = 0;
    if (waitpid(child, &status, 0) != child) return 1;
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("%.9f\n", took.count() / n);
  return 0;
}
