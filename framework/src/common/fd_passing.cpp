#include "fd_passing.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mathpool::detail {

namespace {

// A message of one pid with room for one descriptor; `control` must outlive it.
msghdr pid_message(pid_t* pid, iovec* data, char* control, std::size_t control_size) {
  *data = iovec{pid, sizeof *pid};
  msghdr message{};
  message.msg_iov = data;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = control_size;
  return message;
}

}  // namespace

bool send_fd(int socket, int fd, pid_t pid) {
  iovec data;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message = pid_message(&pid, &data, control, sizeof control);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
  ssize_t n;
  // Never blocks: it is the first message on a fresh socket, and a peer that
  // is gone or stuck must not hold up the host's dispatcher.
  do n = ::sendmsg(socket, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof pid);
}

bool receive_fd(int socket, int* fd, pid_t* pid) {
  iovec data;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message = pid_message(pid, &data, control, sizeof control);
  ssize_t n;
  do n = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  const bool has_fd = header && header->cmsg_level == SOL_SOCKET &&
                      header->cmsg_type == SCM_RIGHTS && header->cmsg_len == CMSG_LEN(sizeof(int));
  if (has_fd) std::memcpy(fd, CMSG_DATA(header), sizeof *fd);
  if (n != static_cast<ssize_t>(sizeof *pid) || !has_fd || (message.msg_flags & MSG_CTRUNC)) {
    if (has_fd) ::close(*fd);  // never leak a descriptor from a bad message
    return false;
  }
  return true;
}

}  // namespace mathpool::detail
