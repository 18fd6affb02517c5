// session_probe: a test server (built with the tests only) whose sessions
// check the handler API's promise that a Session is called by one thread
// at a time, in every model (framework/core/include/prefork/handler.hpp).
//
// Lines in, lines out. A connection is greeted with "hello"; each line
// "<n>" is answered with "<n> <calls> <overlaps> <out of order>": the
// session's calls so far (on_open included), how many of them found
// another call of the same session still under way, and how many lines did
// not carry the next number (0, 1, 2, ... per connection). Any overlap,
// including one in on_close, is also logged on stderr as a line with
// "SESSION OVERLAP", which the tests look for after the server stopped.
//
// The session's own state is plain, unguarded data on purpose: were two
// threads ever to touch it at once, ThreadSanitizer would report it (the
// TSan build of the tests), and the atomic "inside" count would see it in
// any build.
#include <prefork/command_line.hpp>
#include <prefork/log.hpp>

#include <atomic>
#include <charconv>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

namespace {

class ProbeSession final : public prefork::Session {
 public:
  explicit ProbeSession(std::uint64_t connection) : connection_(connection) {}

  void on_open(prefork::Reply& reply) override {
    Call call(*this, "on_open");
    reply.send("hello");
  }

  void on_message(std::string_view line, prefork::Reply& reply) override {
    Call call(*this, "on_message");
    std::uint64_t number = 0;
    auto [end, error] = std::from_chars(line.data(), line.data() + line.size(), number);
    if (error != std::errc() || end != line.data() + line.size() || number != next_) ++disorder_;
    next_ = number + 1;
    seen_ += line;  // heap memory of the session's own, written on every call
    seen_ += ' ';
    std::string answer(line);
    for (std::uint64_t value : {calls_, overlaps_, disorder_}) {
      answer += ' ';
      answer += std::to_string(value);
    }
    reply.send(answer);
  }

  void on_close(prefork::CloseReason, prefork::Reply&) override {
    Call call(*this, "on_close");
    seen_.clear();
  }

 private:
  // Brackets every call: counts it in the plain state and notes an overlap
  // with another call of this session.
  class Call {
   public:
    Call(ProbeSession& session, const char* name) : session_(session) {
      const bool overlap = session_.inside_.fetch_add(1, std::memory_order_acq_rel) != 0;
      ++session_.calls_;
      if (overlap) {
        ++session_.overlaps_;
        prefork::log_info("SESSION OVERLAP: conn %llu, %s entered during another call",
                          static_cast<unsigned long long>(session_.connection_), name);
      }
      // Gives another thread, if one were calling this session too, the
      // time to enter while this call is under way.
      std::this_thread::yield();
    }
    ~Call() { session_.inside_.fetch_sub(1, std::memory_order_acq_rel); }
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

   private:
    ProbeSession& session_;
  };

  const std::uint64_t connection_;
  std::atomic<int> inside_{0};  // calls of this session under way
  // Plain state: only ever touched by one thread at a time (the promise).
  std::uint64_t calls_ = 0;
  std::uint64_t overlaps_ = 0;
  std::uint64_t disorder_ = 0;
  std::uint64_t next_ = 0;
  std::string seen_;
};

class ProbeHandler final : public prefork::Handler {
 public:
  const prefork::Codec& codec(std::size_t, prefork::Protocol) override { return lines_; }
  // Concurrent in the thread models: touches nothing shared.
  std::unique_ptr<prefork::Session> open_session(const prefork::Request& connection) override {
    return std::make_unique<ProbeSession>(connection.connection);
  }

 private:
  prefork::LineCodec lines_;
};

}  // namespace

int main(int argc, char** argv) {
  ProbeHandler handler;
  prefork::CommandLineDefaults defaults;
  defaults.program = "session_probe";
  defaults.description = "Tests: checks that each session is called by one thread at a time.";
  defaults.listeners = {{prefork::Protocol::stream, prefork::Address::parse("127.0.0.1:0")}};
  defaults.max_message = 1024;
  return prefork::prefork_main(argc, argv, handler, defaults);
}
