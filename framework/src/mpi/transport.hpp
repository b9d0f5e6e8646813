// transport.hpp: byte messages between the ranks of the job, never blocking.
//
// Sends are started at once (MPI_Isend) and their bytes kept until MPI is
// done with them; receives take what has arrived (MPI_Iprobe). So two ranks
// sending large messages to each other at the same moment cannot deadlock,
// and a rank is never stuck in MPI waiting for a peer that is gone.
// Not thread-safe: one thread per process talks to MPI (MPI_THREAD_SERIALIZED).
#pragma once

#include <list>
#include <optional>
#include <string>

#include <mpi.h>

#include "mpi_protocol.hpp"

namespace mathpool::mpi_detail {

struct Message {
  int source = 0;
  Tag tag = Tag::end;
  std::string body;
};

class Transport {
 public:
  Transport() = default;
  ~Transport();  // cancels what is still unsent
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  void send(int rank, Tag tag, std::string body);
  // The next message that has arrived, from any rank; nullopt when none.
  std::optional<Message> try_receive();
  // Releases the bytes of completed sends; true when none is pending.
  bool progress();

 private:
  struct Pending {
    MPI_Request request;
    std::string body;
  };
  std::list<Pending> pending_;  // stable addresses: MPI holds the buffers
};

}  // namespace mathpool::mpi_detail
