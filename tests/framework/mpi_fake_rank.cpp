// For test_mpi.cpp: one rank of a job that speaks mathpool's MPI messages
// (mpi_protocol.hpp) wrongly, beside a real `mathpool run --mpi` rank, as a
// rank of another build, or a fault, would:
//
//   mpirun -n 1 mpi_fake_rank rank0-bad-tasks : -n 1 mathpool run --mpi CONFIG
//       rank 0 opens a pool on the agent, then sends it a tasks message cut
//       short; prints "refused: MESSAGE" when the agent says it cannot read
//       it (exit 0), "no answer" after 30 s (exit 1)
//   mpirun -n 1 mathpool run --mpi CONFIG : -n 1 mpi_fake_rank agent-bad-results
//       an agent that answers every tasks or ranges message with a results
//       message that cannot be read, and keeps sending heartbeats
//   mpirun -n 1 mathpool run --mpi CONFIG : -n 1 mpi_fake_rank agent-refuses
//       an agent that says it cannot read every tasks or ranges message
//   mpirun -n 1 mathpool run --mpi CONFIG : -n 1 mpi_fake_rank agent-old-protocol
//       an agent whose hello names another protocol version
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>

#include "mpi_protocol.hpp"

namespace {

using mathpool::mpi_detail::Tag;
using Clock = std::chrono::steady_clock;

void send(int rank, Tag tag, const std::string& body) {
  MPI_Send(body.data(), int(body.size()), MPI_BYTE, rank, int(tag), MPI_COMM_WORLD);
}

// The next message from anyone within `limit`, or false.
bool receive(int& source, Tag& tag, std::string& body, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  int flag = 0;
  MPI_Status status;
  while (!flag) {
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &status);
    if (flag) break;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  body.resize(std::size_t(count));
  MPI_Recv(body.data(), count, MPI_BYTE, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  source = status.MPI_SOURCE;
  tag = Tag(status.MPI_TAG);
  return true;
}

// A MessagePack string of fewer than 32 bytes.
std::string fixstr(std::string_view text) { return char(0xa0 | text.size()) + std::string(text); }

// The agent's hello: {node: "fake", workers: 1, error: "", protocol: P}.
std::string hello(int protocol) {
  return "\x84" + fixstr("node") + fixstr("fake") + fixstr("workers") + "\x01" + fixstr("error") + fixstr("") +
         fixstr("protocol") + char(protocol);
}

int rank0_bad_tasks() {
  mathpool::PoolOptions options;
  options.workers = 1;
  send(1, Tag::open, mathpool::mpi_detail::encode_open(std::chrono::seconds(30), options));
  int source = 0;
  Tag tag{};
  std::string body;
  while (receive(source, tag, body, std::chrono::seconds(30)) && tag != Tag::hello) {
  }
  send(1, Tag::tasks, std::string("\x07\0\0\0\0\0\0\0\x05\0ab", 12));  // an id, then an analysis cut short
  bool refused = false;
  const auto give_up = Clock::now() + std::chrono::seconds(30);  // heartbeats keep coming meanwhile
  while (!refused && Clock::now() < give_up && receive(source, tag, body, std::chrono::seconds(30)))
    if (tag == Tag::refused) {
      std::printf("refused: %s\n", body.c_str());
      refused = true;
    }
  if (!refused) std::printf("no answer\n");
  send(1, Tag::close, std::string(1, '\1'));
  while (receive(source, tag, body, std::chrono::seconds(30)) && tag != Tag::closed) {
  }
  send(1, Tag::end, "");
  return refused ? 0 : 1;
}

int fake_agent(int protocol, bool refuses) {
  int source = 0;
  Tag tag{};
  std::string body;
  auto beat = Clock::now();
  for (;;) {
    if (Clock::now() - beat > std::chrono::milliseconds(500)) {
      send(0, Tag::heartbeat, "fake");
      beat = Clock::now();
    }
    if (!receive(source, tag, body, std::chrono::seconds(1))) continue;
    switch (tag) {
      case Tag::open: send(0, Tag::hello, hello(protocol)); break;
      case Tag::tasks:
      case Tag::ranges:
        if (refuses) send(0, Tag::refused, "the fake agent cannot\x1b[2J read it");  // an escape the terminal must not act on
        else send(0, Tag::results, std::string("\x01\x02\x03", 3));
        break;
      case Tag::close: send(0, Tag::closed, ""); break;
      case Tag::end: return 0;
      default: break;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm same_machine;  // the collective call every mathpool rank makes at the start (mpi/module.cpp)
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &same_machine);
  MPI_Comm_free(&same_machine);
  const std::string mode = argc > 1 ? argv[1] : "";
  int status = 2;
  if (mode == "rank0-bad-tasks") status = rank0_bad_tasks();
  else if (mode == "agent-bad-results") status = fake_agent(mathpool::mpi_detail::kProtocolVersion, false);
  else if (mode == "agent-refuses") status = fake_agent(mathpool::mpi_detail::kProtocolVersion, true);
  else if (mode == "agent-old-protocol") status = fake_agent(1, false);
  std::fflush(stdout);
  MPI_Finalize();
  return status;
}
