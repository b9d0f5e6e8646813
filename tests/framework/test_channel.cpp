// The channel (framework/src/common/channel.hpp) as the host reads a worker:
// only what the named process writes counts; what another process holding a
// copy of the socket writes (a task's escaped child) is dropped.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/channel.hpp"
#include "common/messages.hpp"

namespace mathpool::detail {
namespace {

struct SocketPair {
  int host = -1, worker = -1;
  SocketPair() {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) host = fds[0], worker = fds[1];
  }
  ~SocketPair() {
    if (worker >= 0) ::close(worker);
  }
};

// Writes `bytes` on `fd` from a child process, and waits for it.
void write_from_child(int fd, const std::string& bytes) {
  const pid_t child = fork();
  if (child == 0) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    _exit(n == ssize_t(bytes.size()) ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(Channel, OnlyTheNamedWriterIsReadAndTheRestIsCounted) {
  SocketPair pair;
  ASSERT_GE(pair.host, 0);
  Channel host(pair.host);
  Channel worker(pair.worker);
  pair.worker = -1;  // the Channel owns it now
  host.only_from(getpid());
  const std::string garbage = "\x00\x00\x00\x05garbage, as an escaped process would write";
  write_from_child(worker.fd(), garbage);
  ASSERT_TRUE(worker.send_control(MessageType::refused, RefusedMessage{"from the worker"}.encode()));
  write_from_child(worker.fd(), garbage);
  ASSERT_TRUE(worker.send_control(MessageType::refused, RefusedMessage{"again"}.encode()));
  ASSERT_TRUE(host.fill());
  auto first = host.next_frame();
  ASSERT_TRUE(first);
  EXPECT_EQ(RefusedMessage::decode(*first).message, "from the worker");
  auto second = host.next_frame();
  ASSERT_TRUE(second);
  EXPECT_EQ(RefusedMessage::decode(*second).message, "again");
  EXPECT_FALSE(host.next_frame());
  EXPECT_EQ(host.dropped_bytes(), 2 * garbage.size());
}

TEST(Channel, WithoutANamedWriterEveryWriterIsRead) {
  SocketPair pair;
  ASSERT_GE(pair.host, 0);
  Channel host(pair.host);
  Channel worker(pair.worker);
  pair.worker = -1;
  write_from_child(worker.fd(), std::string("\x01\x00\x00\x00\x01", 5));  // a frame of one byte
  ASSERT_TRUE(host.fill());
  EXPECT_EQ(host.dropped_bytes(), 0u);
  EXPECT_TRUE(host.has_buffered_frame());
}

}  // namespace
}  // namespace mathpool::detail
