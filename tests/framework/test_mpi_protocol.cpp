// The MPI messages' bytes (mpi_protocol.hpp), without MPI: what rank 0 and
// the agents write reads back as written, and truncated or unknown items
// are refused rather than read past their end.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "mpi_protocol.hpp"

namespace mathpool::mpi_detail {
namespace {

TEST(MpiProtocol, ARangesMessageReadsBackItsEntryAndItsRunWithThePatchedCount) {
  std::string body;
  append_entry_item(body, 7, "WIRE");
  const std::size_t head = body.size();
  append_run_head(body, 7, 40, 0);
  for (std::uint64_t id : {11u, 12u, 99u}) put<std::uint64_t>(body, id);
  const std::uint32_t count = 3;
  std::memcpy(body.data() + head + 17, &count, sizeof count);  // as Router::feed patches it
  Reader in(body);
  RangesItem item;
  ASSERT_TRUE(read_ranges_item(in, item));
  EXPECT_TRUE(item.entry);
  EXPECT_EQ(item.entry_id, 7u);
  EXPECT_EQ(item.wire, "WIRE");
  ASSERT_TRUE(read_ranges_item(in, item));
  EXPECT_FALSE(item.entry);
  EXPECT_EQ(item.entry_id, 7u);
  EXPECT_EQ(item.first_index, 40u);
  ASSERT_EQ(item.count, 3u);
  std::uint64_t last = 0;
  std::memcpy(&last, item.ids.data() + 2 * sizeof last, sizeof last);
  EXPECT_EQ(last, 99u);
  EXPECT_FALSE(read_ranges_item(in, item)) << "the end";
}

TEST(MpiProtocol, ATruncatedOrUnknownRangesItemIsRefused) {
  std::string body;
  append_run_head(body, 1, 0, 2);
  put<std::uint64_t>(body, 5);  // one id of two
  Reader short_ids(body);
  RangesItem item;
  EXPECT_FALSE(read_ranges_item(short_ids, item));
  std::string unknown(1, '\2');
  unknown += std::string(16, '\0');
  Reader bad_kind(unknown);
  EXPECT_FALSE(read_ranges_item(bad_kind, item));
  std::string entry;
  append_entry_item(entry, 1, "0123456789");
  entry.resize(entry.size() - 1);
  Reader cut(entry);
  EXPECT_FALSE(read_ranges_item(cut, item));
  // A whole message reads whole; one with a bad item anywhere, last included, does not.
  std::string whole;
  append_entry_item(whole, 1, "0123456789");
  append_run_head(whole, 1, 0, 1);
  put<std::uint64_t>(whole, 5);
  EXPECT_TRUE(readable_ranges(whole));
  EXPECT_TRUE(readable_ranges(""));
  EXPECT_FALSE(readable_ranges(whole + unknown));
  EXPECT_FALSE(readable_ranges(whole + body));
  EXPECT_FALSE(readable_ranges(whole.substr(0, whole.size() - 1)));
}

TEST(MpiProtocol, ResultsOfEveryKindAndRecordLinesReadBackAsWritten) {
  std::vector<detail::RawResult> sent(4);
  sent[0].payload = "\x81\xa1x\x01";  // MessagePack {x: 1}
  sent[0].worker = 4;
  sent[0].seconds = 0.5;
  sent[1].payload = R"({"run":"a","task":0})";
  sent[1].line = true;
  sent[1].attempts = 2;
  sent[2].error = TaskError{ErrorKind::protocol_error, "refused"};
  sent[2].payload = R"({"run":"a","task":1,"status":"error"})";
  sent[2].line = true;
  sent[3].error = TaskError{ErrorKind::result_too_large, "too deep"};  // a kind after invalid_config
  std::string body;
  for (std::size_t i = 0; i < sent.size(); ++i) append_result(body, 100 + i, sent[i]);
  Reader in(body);
  for (std::size_t i = 0; i < sent.size(); ++i) {
    std::uint64_t id = 0;
    detail::RawResult got;
    ASSERT_TRUE(read_result(in, id, got)) << i;
    EXPECT_EQ(id, 100 + i);
    EXPECT_EQ(got.line, sent[i].line) << i;
    EXPECT_EQ(got.payload, sent[i].error && !sent[i].line ? "" : sent[i].payload) << i;
    EXPECT_EQ(got.error.has_value(), sent[i].error.has_value()) << i;
    if (got.error) {
      EXPECT_EQ(got.error->kind, sent[i].error->kind) << i;
      EXPECT_EQ(got.error->message, sent[i].error->message) << i;
    }
    EXPECT_EQ(got.worker, sent[i].worker);
    EXPECT_EQ(got.attempts, sent[i].attempts);
    EXPECT_EQ(got.seconds, sent[i].seconds);
  }
  EXPECT_TRUE(in.done());
}

TEST(MpiProtocol, ATruncatedResultOrAnUnknownLineFlagIsRefused) {
  detail::RawResult line;
  line.payload = R"({"run":"a"})";
  line.line = true;
  std::string body;
  append_result(body, 1, line);
  std::string cut = body.substr(0, body.size() - 1);
  Reader short_line(cut);
  std::uint64_t id;
  detail::RawResult got;
  EXPECT_FALSE(read_result(short_line, id, got));
  body[9] = 2;  // the line flag: u64 id, u8 outcome, then it
  Reader bad_flag(body);
  EXPECT_FALSE(read_result(bad_flag, id, got));
}

}  // namespace
}  // namespace mathpool::mpi_detail
