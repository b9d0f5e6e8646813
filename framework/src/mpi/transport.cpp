#include "transport.hpp"

#include <climits>

#include <fmt/format.h>

#include "mathpool/error.hpp"

namespace mathpool::mpi_detail {

Transport::~Transport() {
  for (Pending& p : pending_) {
    int done = 0;
    MPI_Test(&p.request, &done, MPI_STATUS_IGNORE);
    if (!done) {
      MPI_Cancel(&p.request);
      MPI_Request_free(&p.request);
    }
  }
}

void Transport::send(int rank, Tag tag, std::string body) {
  if (body.size() > std::size_t(INT_MAX))
    throw Error(ErrorKind::io_error, fmt::format("MPI message of {} bytes is too large", body.size()));
  Pending& p = pending_.emplace_back();
  p.body = std::move(body);
  if (MPI_Isend(p.body.data(), int(p.body.size()), MPI_BYTE, rank, int(tag), MPI_COMM_WORLD, &p.request) !=
      MPI_SUCCESS) {
    pending_.pop_back();
    throw Error(ErrorKind::io_error, fmt::format("MPI cannot send to rank {}", rank));
  }
}

std::optional<Message> Transport::try_receive() {
  int flag = 0;
  MPI_Status status;
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &status);
  if (!flag) return std::nullopt;
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  Message message;
  message.source = status.MPI_SOURCE;
  message.tag = Tag(status.MPI_TAG);
  message.body.resize(std::size_t(count));
  MPI_Recv(message.body.data(), count, MPI_BYTE, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD,
           MPI_STATUS_IGNORE);
  return message;
}

bool Transport::progress() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    int done = 0;
    MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
    it = done ? pending_.erase(it) : std::next(it);
  }
  return pending_.empty();
}

}  // namespace mathpool::mpi_detail
