// fd_passing.hpp: handing a file descriptor and a pid across a Unix socket
// (SCM_RIGHTS), used between the zygote template and its host.
#pragma once

#include <sys/types.h>

namespace mathpool::detail {

// Sends `pid` with `fd` attached; returns false when the peer is gone.
bool send_fd(int socket, int fd, pid_t pid);
// Receives what send_fd sent; returns false at end of stream or on garbage.
// The received descriptor is close-on-exec.
bool receive_fd(int socket, int* fd, pid_t* pid);

}  // namespace mathpool::detail
