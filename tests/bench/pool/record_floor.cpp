// record_floor: this machine's floor for writing a run's records. Writes to
// OUTPUT the N record lines a `mathpool run` of the volume config (a range
// sweep `x: [0, N)` over example.echo, run "echo") writes, byte for byte but
// for `worker` and `seconds` (a fixed worker pattern and a fixed time):
//
//   {"run":"echo","analysis":"example.echo","task":I,"repeat":0,"params":{"x":I},
//    "status":"ok","result":{"x":I},"worker":W,"seconds":S}
//
// Constant parts are copied, integers formatted by std::to_chars, in two
// threads taking blocks of lines in turn; each thread writes its block with
// one large write() when the block before it is written. No JSON library, no
// messages, no processes: a `mathpool run` writing the same file cannot cost
// less. Prints the wall seconds it took.
//
//   record_floor N OUTPUT
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

namespace {

constexpr long kBlockLines = 32768;  // about 3.5 MB a write
constexpr int kThreads = 2;

void append(std::string& out, std::string_view s) { out.append(s); }

void append_integer(std::string& out, long value) {
  char number[24];
  out.append(number, std::to_chars(number, number + sizeof number, value).ptr);
}

// The lines of tasks [first, last) into `out` (cleared first).
void format_block(std::string& out, long first, long last) {
  out.clear();
  for (long i = first; i < last; ++i) {
    append(out, R"({"run":"echo","analysis":"example.echo","task":)");
    append_integer(out, i);
    append(out, R"(,"repeat":0,"params":{"x":)");
    append_integer(out, i);
    append(out, R"(},"status":"ok","result":{"x":)");
    append_integer(out, i);
    append(out, R"(},"worker":)");
    append_integer(out, (i / 1000) % 2);  // chunks of tasks alternate between two workers
    append(out, ",\"seconds\":1.2e-06}\n");
  }
}

bool write_all(int fd, const std::string& bytes) {
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) return false;
    done += std::size_t(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: record_floor N OUTPUT\n");
    return 2;
  }
  const long n = std::atol(argv[1]);
  const auto start = std::chrono::steady_clock::now();
  const int fd = ::open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(argv[2]);
    return 1;
  }
  const long blocks = (n + kBlockLines - 1) / kBlockLines;
  std::atomic<long> written{0};  // blocks written so far, in order
  std::atomic<bool> failed{false};
  auto work = [&](int self) {
    std::string buffer;
    buffer.reserve(std::size_t(kBlockLines) * 128);
    for (long b = self; b < blocks && !failed; b += kThreads) {
      format_block(buffer, b * kBlockLines, std::min(n, (b + 1) * kBlockLines));
      for (long w = written.load(); w != b; w = written.load()) written.wait(w);  // block b-1 first
      if (!write_all(fd, buffer)) failed = true;
      written.store(b + 1);
      written.notify_all();
    }
  };
  std::thread other(work, 1);
  work(0);
  other.join();
  if (failed || ::close(fd) != 0) {
    std::perror("record_floor: write");
    return 1;
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("%.6f\n", took.count());
  return 0;
}
