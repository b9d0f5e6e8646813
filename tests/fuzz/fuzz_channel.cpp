// Any bytes arriving on a channel decode to messages or raise ProtocolError;
// nothing else may escape, crash or hang.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

#include "common/channel.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return 0;
  if (size > 0 && ::write(fds[1], data, size) != static_cast<ssize_t>(size)) {
    close(fds[0]);
    close(fds[1]);
    return 0;
  }
  close(fds[1]);
  mathpool::detail::Channel channel(fds[0]);
  try {
    while (channel.fill()) {
      while (auto message = channel.next_buffered()) (void)message->dump(-1, ' ', false, mathpool::Value::error_handler_t::replace);
    }
    while (auto message = channel.next_buffered()) (void)message->dump(-1, ' ', false, mathpool::Value::error_handler_t::replace);
  } catch (const mathpool::detail::ProtocolError&) {
  }
  return 0;
}
