// One TCP connection's protocol (workers/src/stream_protocol.hpp) driven
// directly, without sockets, as a runtime drives it: bytes in, whole
// messages to the session, replies laid out in the output buffer, and the
// connection's end decided once, with its reason, told to the session and
// counted in the scoreboard slot.
#define BOOST_TEST_MODULE stream_protocol
#include <boost/test/unit_test.hpp>

#include <prefork/codec.hpp>
#include <prefork/handler.hpp>

#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "stream_protocol.hpp"

using prefork::CloseReason;
using prefork::ErrorKind;
using prefork::StreamProtocol;

namespace {

constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

std::string cat(std::initializer_list<std::string_view> pieces) {
  std::string out;
  for (std::string_view piece : pieces) out += piece;
  return out;
}

std::string name(CloseReason reason) { return std::string(prefork::close_reason_name(reason)); }

// What the session saw, in order, across connections.
using Journal = std::vector<std::string>;

// A session that obeys its messages: ECHO-like by default, and
//   CLOSE  "bye", then Reply::close()    ABORT  "lost", then Reply::abort()
//   THROW  throws                        CLOSE_ABORT, ABORT_CLOSE  both, in that order
//   HUGE   a reply too big for a 1-byte length header (throws from allocate)
//   TRY    the same, caught, then a short reply
// Its on_close says its last words: "last:<reason>".
class Scripted final : public prefork::Session {
 public:
  Scripted(Journal& journal, std::string greeting, std::string open_command)
      : journal_(journal), greeting_(std::move(greeting)), open_command_(std::move(open_command)) {}
  ~Scripted() override { journal_.push_back("destroyed"); }

  void on_open(prefork::Reply& reply) override {
    journal_.push_back("open");
    if (!greeting_.empty()) reply.send(greeting_);
    if (!open_command_.empty()) obey(open_command_, reply);
  }
  void on_message(std::string_view message, prefork::Reply& reply) override {
    journal_.push_back(cat({"message:", message}));
    obey(message, reply);
  }
  void on_close(CloseReason reason, prefork::Reply& reply) override {
    journal_.push_back(cat({"close:", name(reason)}));
    reply.send(cat({"last:", name(reason)}));
    if (throw_in_close) throw std::runtime_error("scripted failure in on_close");
  }

  bool throw_in_close = false;

 private:
  void obey(std::string_view command, prefork::Reply& reply) {
    if (command == "CLOSE") {
      reply.send("bye");
      reply.close();
    } else if (command == "ABORT") {
      reply.send("lost");
      reply.abort();
    } else if (command == "THROW") {
      reply.send("half");
      throw std::runtime_error("scripted failure");
    } else if (command == "CLOSE_ABORT") {
      reply.close();
      reply.abort();
    } else if (command == "ABORT_CLOSE") {
      reply.abort();
      reply.close();
    } else if (command == "HUGE") {
      reply.allocate(300);
    } else if (command == "TRY") {
      try {
        reply.allocate(300);
      } catch (const std::length_error&) {
        reply.send("too big");
      }
    } else {
      reply.send(cat({"re:", command}));
    }
  }

  Journal& journal_;
  std::string greeting_;
  std::string open_command_;
};

class ScriptHandler final : public prefork::Handler {
 public:
  ScriptHandler(const prefork::Codec& codec, Journal& journal) : codec_(codec), journal_(journal) {}

  std::string greeting;
  std::string open_command;  // obeyed in on_open, after the greeting
  bool throw_in_open_session = false;
  bool throw_in_close = false;             // the sessions' on_close throws
  std::vector<std::uint64_t> connections;  // Request::connection seen by open_session

  const prefork::Codec& codec(std::size_t, prefork::Protocol) override { return codec_; }
  std::unique_ptr<prefork::Session> open_session(const prefork::Request& request) override {
    connections.push_back(request.connection);
    if (throw_in_open_session) throw std::runtime_error("no session today");
    auto session = std::make_unique<Scripted>(journal_, greeting, open_command);
    session->throw_in_close = throw_in_close;
    return session;
  }

 private:
  const prefork::Codec& codec_;
  Journal& journal_;
};

// What the runtime gives a connection: a slot to count in, the output
// buffer it writes to the socket, its request timer.
struct Rig {
  explicit Rig(prefork::Handler& handler, std::size_t max_message = 1024)
      : context{handler, stats, max_message, 7, {}} {}

  std::unique_ptr<StreamProtocol> connect(prefork::Protocol protocol = prefork::Protocol::stream) {
    return std::make_unique<StreamProtocol>(context, peer, protocol, 0, out, timer);
  }

  std::uint64_t closes(CloseReason reason) const {
    return slot->counters.closes[static_cast<unsigned>(reason)].load();
  }
  std::uint64_t all_closes() const {
    std::uint64_t all = 0;
    for (const auto& n : slot->counters.closes) all += n.load();
    return all;
  }
  std::uint64_t errors(ErrorKind kind) const {
    return slot->counters.error_kinds[static_cast<unsigned>(kind)].load();
  }

  std::unique_ptr<prefork::Slot> slot = std::make_unique<prefork::Slot>();
  prefork::SlotWriter stats{*slot};
  prefork::StreamContext context;
  prefork::Address peer = prefork::Address::parse("127.0.0.1:4000");
  prefork::Buffer out;
  prefork::RequestTimer timer;
};

// A connection to ScriptHandler, its messages cut into lines: the fixture of
// most cases below (the protocol object made, not yet opened).
struct LineConnection {
  prefork::LineCodec lines;
  Journal journal;
  ScriptHandler handler{lines, journal};
  Rig rig{handler};
  std::unique_ptr<StreamProtocol> protocol = rig.connect();
};

// Feeds `chunks` as successive reads, keeping what serve() did not consume
// (as the runtime does); returns what was left unconsumed.
std::string drive(StreamProtocol& protocol, const std::vector<std::string_view>& chunks) {
  std::string pending;
  for (std::string_view chunk : chunks) {
    pending += chunk;
    if (protocol.ending()) continue;
    pending.erase(0, protocol.serve(pending, unlimited));
  }
  return pending;
}

std::string length_header(unsigned width, std::size_t size) {
  prefork::LengthPrefixCodec codec(width, prefork::LengthPrefixCodec::Endian::big);
  std::string header(width, '\0');
  codec.write_header(size, header.data());
  return header;
}

}  // namespace

BOOST_AUTO_TEST_CASE(messages_split_at_every_byte_or_merged_are_the_same) {
  prefork::LineCodec lines;
  const std::string stream = "one\r\n\ntwo words\nthree\r\n";
  const Journal expected = {"open", "message:one", "message:", "message:two words",
                            "message:three"};
  const std::string replies = "hi\nre:one\nre:\nre:two words\nre:three\n";

  auto check = [&](const std::vector<std::string_view>& chunks, const std::string& how) {
    Journal journal;
    ScriptHandler handler(lines, journal);
    handler.greeting = "hi";
    Rig rig(handler);
    auto protocol = rig.connect();
    protocol->open();
    BOOST_TEST_REQUIRE(drive(*protocol, chunks).empty(), how);
    BOOST_TEST_REQUIRE(journal == expected, how);
    BOOST_TEST_REQUIRE(rig.out.view() == replies, how);
    BOOST_TEST_REQUIRE(rig.slot->counters.requests.load() == 4u, how);
    BOOST_TEST_REQUIRE(!protocol->ending(), how);
  };
  check({stream}, "merged");
  for (std::size_t at = 1; at < stream.size(); ++at)
    check({std::string_view(stream).substr(0, at), std::string_view(stream).substr(at)},
          cat({"split at ", std::to_string(at)}));
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i)
    bytes.push_back(std::string_view(stream).substr(i, 1));
  check(bytes, "one byte at a time");
}

BOOST_AUTO_TEST_CASE(framed_messages_split_at_every_byte_and_replies_framed) {
  prefork::LengthPrefixCodec frames(2, prefork::LengthPrefixCodec::Endian::little);
  std::string stream;
  for (std::string_view m : {"alpha", "", "gamma"}) {
    stream += static_cast<char>(m.size());
    stream += '\0';
    stream += m;
  }
  std::string replies;
  for (std::string_view r : {"re:alpha", "re:", "re:gamma"}) {
    replies += static_cast<char>(r.size());
    replies += '\0';
    replies += r;
  }
  for (std::size_t at = 0; at < stream.size(); ++at) {
    Journal journal;
    ScriptHandler handler(frames, journal);
    Rig rig(handler);
    auto protocol = rig.connect(prefork::Protocol::framed);
    protocol->open();
    std::vector<std::string_view> chunks = {stream};
    if (at > 0)
      chunks = {std::string_view(stream).substr(0, at), std::string_view(stream).substr(at)};
    BOOST_TEST_REQUIRE(drive(*protocol, chunks).empty());
    BOOST_TEST_REQUIRE(journal == (Journal{"open", "message:alpha", "message:", "message:gamma"}),
                       "split at " << at);
    BOOST_TEST_REQUIRE(rig.out.view() == replies, "split at " << at);
  }
}

BOOST_AUTO_TEST_CASE(on_open_greeting_is_laid_out_first) {
  prefork::LengthPrefixCodec frames(4, prefork::LengthPrefixCodec::Endian::big);
  Journal journal;
  ScriptHandler handler(frames, journal);
  handler.greeting = "welcome";
  Rig rig(handler);
  auto protocol = rig.connect(prefork::Protocol::framed);
  BOOST_TEST(rig.out.empty());
  protocol->open();
  BOOST_TEST(rig.out.view() == cat({length_header(4, 7), "welcome"}));
  BOOST_TEST(journal == Journal{"open"});
  BOOST_TEST(!protocol->ending());
  BOOST_TEST(rig.slot->counters.connections_total.load() == 1u);
  BOOST_TEST(rig.slot->connections_active.load() == 1u);
  // The greeting is not a request.
  BOOST_TEST(rig.slot->counters.requests.load() == 0u);
}

BOOST_FIXTURE_TEST_CASE(close_stops_handling_the_rest_and_keeps_the_last_words, LineConnection) {
  protocol->open();
  const std::string input = "a\nCLOSE\nb\nc\n";
  const std::size_t consumed = protocol->serve(input, unlimited);
  BOOST_TEST(consumed == std::string_view("a\nCLOSE\n").size());
  BOOST_TEST((protocol->ending() == CloseReason::handler_closed));
  BOOST_TEST(protocol->flush_first());
  BOOST_TEST(journal ==
             (Journal{"open", "message:a", "message:CLOSE", "close:handler_closed", "destroyed"}));
  BOOST_TEST(rig.out.view() == "re:a\nbye\nlast:handler_closed\n");
  // Nothing more is handled, however much is offered.
  BOOST_TEST(protocol->serve(std::string_view(input).substr(consumed), unlimited) == 0u);
  BOOST_TEST(journal.size() == 5u);
  BOOST_TEST(rig.closes(CloseReason::handler_closed) == 1u);
  BOOST_TEST(rig.all_closes() == 1u);
  BOOST_TEST(rig.slot->counters.errors.load() == 0u);
  BOOST_TEST(rig.slot->connections_active.load() == 0u);
}

BOOST_FIXTURE_TEST_CASE(abort_drops_the_output_and_the_last_words, LineConnection) {
  handler.greeting = "hi";
  protocol->open();
  BOOST_TEST(protocol->serve("a\nABORT\nb\n", unlimited) == std::string_view("a\nABORT\n").size());
  BOOST_TEST((protocol->ending() == CloseReason::handler_aborted));
  BOOST_TEST(!protocol->flush_first());
  BOOST_TEST(rig.out.empty());  // greeting, "re:a", "lost" and the last words all dropped
  BOOST_TEST(journal ==
             (Journal{"open", "message:a", "message:ABORT", "close:handler_aborted", "destroyed"}));
  BOOST_TEST(rig.closes(CloseReason::handler_aborted) == 1u);
  BOOST_TEST(rig.all_closes() == 1u);
  BOOST_TEST(rig.slot->counters.errors.load() == 0u);
}

BOOST_AUTO_TEST_CASE(abort_wins_over_close_in_the_same_call) {
  prefork::LineCodec lines;
  for (const char* both : {"x\nCLOSE_ABORT\n", "x\nABORT_CLOSE\n"}) {
    Journal journal;
    ScriptHandler handler(lines, journal);
    Rig rig(handler);
    auto protocol = rig.connect();
    protocol->open();
    protocol->serve(both, unlimited);
    BOOST_TEST((protocol->ending() == CloseReason::handler_aborted), both);
    BOOST_TEST(rig.out.empty());
    BOOST_TEST(rig.closes(CloseReason::handler_aborted) == 1u);
    BOOST_TEST(rig.all_closes() == 1u);
  }
}

BOOST_FIXTURE_TEST_CASE(a_throwing_session_fails_the_connection_and_counts_an_error,
                        LineConnection) {
  protocol->open();
  BOOST_TEST(protocol->serve("a\nTHROW\nb\n", unlimited) == std::string_view("a\nTHROW\n").size());
  BOOST_TEST((protocol->ending() == CloseReason::handler_failed));
  BOOST_TEST(!protocol->flush_first());
  BOOST_TEST(rig.out.empty());  // "re:a", the half reply and the last words dropped
  BOOST_TEST(journal ==
             (Journal{"open", "message:a", "message:THROW", "close:handler_failed", "destroyed"}));
  BOOST_TEST(rig.errors(ErrorKind::handler_exception) == 1u);
  BOOST_TEST(rig.slot->counters.errors.load() == 1u);
  BOOST_TEST(rig.closes(CloseReason::handler_failed) == 1u);
  BOOST_TEST(rig.all_closes() == 1u);
}

BOOST_AUTO_TEST_CASE(a_reply_too_big_for_its_header_fails_the_connection) {
  prefork::LengthPrefixCodec tiny(1, prefork::LengthPrefixCodec::Endian::big);
  Journal journal;
  ScriptHandler handler(tiny, journal);
  Rig rig(handler);
  auto protocol = rig.connect(prefork::Protocol::framed);
  protocol->open();
  const std::string input = cat({length_header(1, 4), "HUGE"});
  protocol->serve(input, unlimited);
  BOOST_TEST((protocol->ending() == CloseReason::handler_failed));
  BOOST_TEST(rig.errors(ErrorKind::handler_exception) == 1u);
  BOOST_TEST(rig.out.empty());
}

BOOST_AUTO_TEST_CASE(a_refused_reply_leaves_no_trace_in_the_output) {
  // The session catches the length_error and answers something else: the
  // header of the refused reply must not stay in the output.
  prefork::LengthPrefixCodec tiny(1, prefork::LengthPrefixCodec::Endian::big);
  Journal journal;
  ScriptHandler handler(tiny, journal);
  Rig rig(handler);
  auto protocol = rig.connect(prefork::Protocol::framed);
  protocol->open();
  const std::string input = cat({length_header(1, 3), "TRY"});
  protocol->serve(input, unlimited);
  BOOST_TEST(!protocol->ending());
  BOOST_TEST(rig.out.view() == cat({length_header(1, 7), "too big"}));
  BOOST_TEST(rig.slot->counters.errors.load() == 0u);
}

BOOST_AUTO_TEST_CASE(a_line_over_the_limit_ends_with_limit_exceeded) {
  prefork::LineCodec lines;
  Journal journal;
  ScriptHandler handler(lines, journal);
  Rig rig(handler, 8);
  auto protocol = rig.connect();
  protocol->open();
  // A whole line first, then one that never ends in time.
  const std::string input = cat({"ok\n", std::string(10, 'x')});
  BOOST_TEST(protocol->serve(input, unlimited) == 3u);
  BOOST_TEST((protocol->ending() == CloseReason::limit_exceeded));
  BOOST_TEST(protocol->flush_first());  // a graceful end: the last words go out
  BOOST_TEST(rig.out.view() == "re:ok\nlast:limit_exceeded\n");
  BOOST_TEST(journal == (Journal{"open", "message:ok", "close:limit_exceeded", "destroyed"}));
  BOOST_TEST(rig.errors(ErrorKind::oversized_frame) == 1u);
  BOOST_TEST(rig.slot->counters.errors.load() == 1u);
  BOOST_TEST(rig.closes(CloseReason::limit_exceeded) == 1u);
  BOOST_TEST(rig.all_closes() == 1u);
}

BOOST_AUTO_TEST_CASE(a_frame_over_the_limit_is_refused_from_its_header) {
  prefork::LengthPrefixCodec frames;
  Journal journal;
  ScriptHandler handler(frames, journal);
  Rig rig(handler, 100);
  auto protocol = rig.connect(prefork::Protocol::framed);
  protocol->open();
  BOOST_TEST(protocol->serve(length_header(4, 101), unlimited) == 0u);
  BOOST_TEST((protocol->ending() == CloseReason::limit_exceeded));
  BOOST_TEST(rig.errors(ErrorKind::oversized_frame) == 1u);
  BOOST_TEST(rig.closes(CloseReason::limit_exceeded) == 1u);
  // One of exactly the limit is served.
  Journal other_journal;
  ScriptHandler other_handler(frames, other_journal);
  Rig other(other_handler, 100);
  auto fine = other.connect(prefork::Protocol::framed);
  fine->open();
  const std::string exact = cat({length_header(4, 100), std::string(100, 'e')});
  BOOST_TEST(fine->serve(exact, unlimited) == exact.size());
  BOOST_TEST(!fine->ending());
  BOOST_TEST(other_journal.size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_codec_that_never_decides_is_cut_off_past_limit_and_overhead) {
  // An embedder's codec that always wants more: the runtime still bounds
  // what one connection buffers.
  struct Greedy final : prefork::Codec {
    prefork::Decoded decode(std::string_view, std::size_t) const override {
      return prefork::Decoded::need_more();
    }
    std::size_t overhead() const noexcept override { return 3; }
  } greedy;
  Journal journal;
  ScriptHandler handler(greedy, journal);
  Rig rig(handler, 10);
  auto protocol = rig.connect();
  protocol->open();
  BOOST_TEST(protocol->serve(std::string(13, 'g'), unlimited) == 0u);
  BOOST_TEST(!protocol->ending());  // limit + overhead may still be one message
  BOOST_TEST(protocol->serve(std::string(14, 'g'), unlimited) == 0u);
  BOOST_TEST((protocol->ending() == CloseReason::limit_exceeded));
  BOOST_TEST(rig.errors(ErrorKind::oversized_frame) == 1u);
}

BOOST_FIXTURE_TEST_CASE(each_end_is_counted_once_with_the_first_reason, LineConnection) {
  protocol->open();
  protocol->end(CloseReason::peer_closed);
  protocol->end(CloseReason::peer_reset);
  protocol->end(CloseReason::worker_stopping);
  BOOST_TEST((protocol->ending() == CloseReason::peer_closed));
  protocol.reset();  // a decided connection is not ended again on destruction
  BOOST_TEST(rig.closes(CloseReason::peer_closed) == 1u);
  BOOST_TEST(rig.all_closes() == 1u);
  BOOST_TEST(journal == (Journal{"open", "close:peer_closed", "destroyed"}));
  BOOST_TEST(rig.out.view() == "last:peer_closed\n");
  BOOST_TEST(rig.slot->connections_active.load() == 0u);

  // A close asked by the handler, then the runtime's own decision.
  auto second = rig.connect();
  second->open();
  second->serve("CLOSE\n", unlimited);
  second->end(CloseReason::peer_reset);
  second.reset();
  BOOST_TEST(rig.closes(CloseReason::handler_closed) == 1u);
  BOOST_TEST(rig.closes(CloseReason::peer_reset) == 0u);
  BOOST_TEST(rig.all_closes() == 2u);
  BOOST_TEST(rig.slot->counters.connections_total.load() == 2u);
  BOOST_TEST(rig.slot->connections_active.load() == 0u);
}

BOOST_FIXTURE_TEST_CASE(a_throwing_on_close_counts_an_error_and_the_end_once, LineConnection) {
  handler.throw_in_close = true;
  protocol->open();
  protocol->end(CloseReason::peer_closed);
  BOOST_TEST((protocol->ending() == CloseReason::peer_closed));
  BOOST_TEST(journal == (Journal{"open", "close:peer_closed", "destroyed"}));
  BOOST_TEST(rig.errors(ErrorKind::handler_exception) == 1u);
  BOOST_TEST(rig.closes(CloseReason::peer_closed) == 1u);
  BOOST_TEST(rig.all_closes() == 1u);
  BOOST_TEST(rig.slot->connections_active.load() == 0u);
  protocol.reset();
  BOOST_TEST(journal.size() == 3u);
}

BOOST_FIXTURE_TEST_CASE(a_reset_by_the_peer_drops_the_last_words, LineConnection) {
  handler.greeting = "hi";
  protocol->open();
  protocol->end(CloseReason::peer_reset);
  BOOST_TEST(!protocol->flush_first());
  BOOST_TEST(rig.out.empty());
  BOOST_TEST(journal == (Journal{"open", "close:peer_reset", "destroyed"}));
  BOOST_TEST(rig.closes(CloseReason::peer_reset) == 1u);
}

BOOST_FIXTURE_TEST_CASE(the_session_is_destroyed_right_after_on_close, LineConnection) {
  protocol->open();
  protocol->serve("a\n", unlimited);
  BOOST_TEST(journal.back() == "message:a");  // alive between messages
  protocol->end(CloseReason::idle_timeout);
  // Before the protocol object itself goes: the session does not outlive
  // its connection's end.
  BOOST_TEST(journal == (Journal{"open", "message:a", "close:idle_timeout", "destroyed"}));
  protocol.reset();
  BOOST_TEST(journal.size() == 4u);
}

BOOST_FIXTURE_TEST_CASE(destroyed_without_a_decision_the_session_hears_worker_stopping,
                        LineConnection) {
  protocol->open();
  protocol->serve("a\nhalf", unlimited);
  protocol.reset();
  BOOST_TEST(journal == (Journal{"open", "message:a", "close:worker_stopping", "destroyed"}));
  BOOST_TEST(rig.closes(CloseReason::worker_stopping) == 1u);
  BOOST_TEST(rig.all_closes() == 1u);
  BOOST_TEST(rig.slot->connections_active.load() == 0u);

  // One never opened (accepted, then dropped) is neither told nor counted.
  auto unopened = rig.connect();
  unopened.reset();
  BOOST_TEST(journal.size() == 4u);
  BOOST_TEST(rig.all_closes() == 1u);
}

BOOST_AUTO_TEST_CASE(on_open_may_end_the_connection_at_once) {
  prefork::LineCodec lines;
  {
    Journal journal;
    ScriptHandler handler(lines, journal);
    handler.greeting = "busy";
    handler.open_command = "CLOSE";
    Rig rig(handler);
    auto protocol = rig.connect();
    protocol->open();
    BOOST_TEST((protocol->ending() == CloseReason::handler_closed));
    BOOST_TEST(rig.out.view() == "busy\nbye\nlast:handler_closed\n");
    BOOST_TEST(protocol->serve("never\n", unlimited) == 0u);
    BOOST_TEST(journal == (Journal{"open", "close:handler_closed", "destroyed"}));
  }
  {
    Journal journal;
    ScriptHandler handler(lines, journal);
    handler.open_command = "ABORT";
    Rig rig(handler);
    auto protocol = rig.connect();
    protocol->open();
    BOOST_TEST((protocol->ending() == CloseReason::handler_aborted));
    BOOST_TEST(rig.out.empty());
  }
  {
    Journal journal;
    ScriptHandler handler(lines, journal);
    handler.open_command = "THROW";
    Rig rig(handler);
    auto protocol = rig.connect();
    protocol->open();
    BOOST_TEST((protocol->ending() == CloseReason::handler_failed));
    BOOST_TEST(rig.errors(ErrorKind::handler_exception) == 1u);
    BOOST_TEST(journal == (Journal{"open", "close:handler_failed", "destroyed"}));
  }
  {
    Journal journal;
    ScriptHandler handler(lines, journal);
    handler.throw_in_open_session = true;
    Rig rig(handler);
    auto protocol = rig.connect();
    protocol->open();
    BOOST_TEST((protocol->ending() == CloseReason::handler_failed));
    BOOST_TEST(rig.errors(ErrorKind::handler_exception) == 1u);
    BOOST_TEST(rig.closes(CloseReason::handler_failed) == 1u);
    BOOST_TEST(journal.empty());  // no session was made
  }
}

BOOST_AUTO_TEST_CASE(connections_are_numbered_from_one_in_each_context) {
  prefork::LineCodec lines;
  Journal journal;
  ScriptHandler handler(lines, journal);
  Rig rig(handler);
  std::vector<std::uint64_t> numbers;
  for (int i = 0; i < 3; ++i) {
    auto protocol = rig.connect();
    numbers.push_back(protocol->request().connection);
    BOOST_TEST(protocol->request().worker_slot == 7u);
    protocol->open();
    protocol->end(CloseReason::peer_closed);
  }
  BOOST_TEST(numbers == (std::vector<std::uint64_t>{1, 2, 3}));
  BOOST_TEST(handler.connections == (std::vector<std::uint64_t>{1, 2, 3}));
  // Another worker process (another context) counts on its own.
  Rig other(handler);
  BOOST_TEST(other.connect()->request().connection == 1u);
}

BOOST_AUTO_TEST_CASE(without_a_session_the_handler_gets_each_message) {
  // The plain-function path: a lambda as the handler, no session; it may
  // close the connection too.
  std::vector<std::string> seen;
  std::vector<std::uint64_t> connections;
  prefork::FunctionHandler function(
      [&](const prefork::Request& request, std::string_view data, prefork::Reply& reply) {
        seen.emplace_back(data);
        connections.push_back(request.connection);
        reply.send(cat({"<", data, ">"}));
        if (data == "quit") reply.close();
      });
  prefork::LineCodec lines;
  struct WithLines final : prefork::Handler {
    WithLines(prefork::Handler& inner, const prefork::Codec& codec) : inner(inner), codec_(codec) {}
    void handle(const prefork::Request& r, std::string_view d, prefork::Reply& reply) override {
      inner.handle(r, d, reply);
    }
    const prefork::Codec& codec(std::size_t, prefork::Protocol) override { return codec_; }
    prefork::Handler& inner;
    const prefork::Codec& codec_;
  } handler(function, lines);
  Rig rig(handler);
  auto protocol = rig.connect();
  protocol->open();
  BOOST_TEST(rig.out.empty());  // no session, no greeting
  protocol->serve("a\nquit\nb\n", unlimited);
  BOOST_TEST(seen == (std::vector<std::string>{"a", "quit"}));
  BOOST_TEST(connections == (std::vector<std::uint64_t>{1, 1}));
  BOOST_TEST((protocol->ending() == CloseReason::handler_closed));
  BOOST_TEST(rig.out.view() == "<a>\n<quit>\n");
  BOOST_TEST(rig.closes(CloseReason::handler_closed) == 1u);

  // The default codec of a framed listener: a 4-byte big-endian prefix.
  Rig framed_rig(function);
  auto framed = framed_rig.connect(prefork::Protocol::framed);
  framed->open();
  framed->serve(cat({length_header(4, 2), "hi"}), unlimited);
  BOOST_TEST(framed_rig.out.view() == cat({length_header(4, 4), "<hi>"}));
  // And raw chunks on a plain stream listener: the whole input, as it came.
  Rig raw_rig(function);
  auto raw = raw_rig.connect(prefork::Protocol::stream);
  raw->open();
  BOOST_TEST(raw->serve("x\ny", unlimited) == 3u);
  BOOST_TEST(raw_rig.out.view() == "<x\ny>");
}

BOOST_AUTO_TEST_CASE(serving_pauses_once_the_output_is_over_its_limit) {
  // Back-pressure: the runtime stops handing messages over while the client
  // does not read; the rest is served later, in order.
  prefork::LineCodec lines;
  Journal journal;
  ScriptHandler handler(lines, journal);
  Rig rig(handler);
  auto protocol = rig.connect();
  protocol->open();
  const std::string input = "a\nb\nc\n";
  const std::size_t first = protocol->serve(input, 3);  // "re:a\n" is over 3 bytes
  BOOST_TEST(first == 2u);
  BOOST_TEST(rig.out.view() == "re:a\n");
  rig.out.consume(rig.out.size());  // written
  BOOST_TEST(protocol->holds_message(std::string_view(input).substr(first)));
  BOOST_TEST(protocol->serve(std::string_view(input).substr(first), unlimited) == 4u);
  BOOST_TEST(rig.out.view() == "re:b\nre:c\n");
  BOOST_TEST(!protocol->holds_message("half"));
  BOOST_TEST(!protocol->holds_message(""));
}
