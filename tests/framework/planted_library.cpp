// A library planted as libfmt.so.9 in a folder a program is started from
// (test_runpath.cpp): when loaded, its constructor creates the file named by
// MATHPOOL_PLANTED_MARKER, so a test sees whether the loader took it.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

extern "C" __attribute__((constructor)) void mathpool_planted_library_loaded() {
  const char* marker = std::getenv("MATHPOOL_PLANTED_MARKER");
  const int fd = ::open(marker ? marker : "planted-library-ran", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
}
