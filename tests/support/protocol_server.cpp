// protocol_server: a test-only server for the protocol API's ways to end a
// connection, run by tests/integration/protocol_api_test.cpp. Built only
// with the tests. `--handler` picks how its code is written:
//
//   session     (default) a Handler with a Session per connection over lines:
//               greets "HELLO" in on_open, then answers
//                 ECHO text -> text        CLOSE -> BYE, then Reply::close()
//                 ABORT -> Reply::abort()  THROW -> on_message throws
//                 HOLD -> never returns (a request the handler holds: for the
//                         models where it blocks only its own thread or
//                         process; the worker's signals must still work)
//                 anything else -> ERR
//               and says "END <reason>" in on_close.
//   function    a plain lambda given to prefork_main, no session, on frames
//               (the default 4-byte prefix): "close", "abort", "throw",
//               "hold", or anything else answered "<connection number>:<payload>".
//   connection  a lambda taking a Connection& (blocking models only), with
//               the session's commands over read_line()/write(), and
//               "END <reason>" once its reads end.
#include <prefork/command_line.hpp>
#include <prefork/connection.hpp>

#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

// HOLD: the handler keeps the request until its process ends.
[[noreturn]] void hold() {
  for (;;) ::pause();
}

std::string line(std::string_view text) {
  std::string out(text);
  out += '\n';
  return out;
}

class CommandSession final : public prefork::Session {
 public:
  void on_open(prefork::Reply& reply) override { reply.send("HELLO"); }

  void on_message(std::string_view message, prefork::Reply& reply) override {
    if (message.starts_with("ECHO ")) {
      reply.send(message.substr(5));
    } else if (message == "CLOSE") {
      reply.send("BYE");
      reply.close();
    } else if (message == "ABORT") {
      reply.send("LOST");  // never seen: an abort drops what is unsent
      reply.abort();
    } else if (message == "THROW") {
      reply.send("HALF");  // never seen either
      throw std::runtime_error("THROW asked for");
    } else if (message == "HOLD") {
      hold();
    } else {
      reply.send("ERR");
    }
  }

  void on_close(prefork::CloseReason reason, prefork::Reply& reply) override {
    std::string last = "END ";
    last += prefork::close_reason_name(reason);
    reply.send(last);
  }
};

class SessionHandler final : public prefork::Handler {
 public:
  const prefork::Codec& codec(std::size_t, prefork::Protocol) override { return lines_; }
  std::unique_ptr<prefork::Session> open_session(const prefork::Request&) override {
    return std::make_unique<CommandSession>();
  }

 private:
  prefork::LineCodec lines_;
};

void serve_connection(prefork::Connection& connection) {
  if (!connection.write("HELLO\n")) return;
  while (auto message = connection.read_line()) {
    if (message->starts_with("ECHO ")) {
      if (!connection.write(line(message->substr(5)))) return;
    } else if (*message == "CLOSE") {
      connection.write("BYE\n");
      connection.close();
      return;
    } else if (*message == "ABORT") {
      connection.abort();
      return;
    } else if (*message == "THROW") {
      throw std::runtime_error("THROW asked for");
    } else if (*message == "HOLD") {
      hold();
    } else if (!connection.write("ERR\n")) {
      return;
    }
  }
  // The reads ended (the client's half-close, a line over the limit, the
  // worker stopping): last words, as the session's on_close says them.
  std::string last = "END ";
  if (auto reason = connection.reason()) last += prefork::close_reason_name(*reason);
  connection.write(line(last));
}

// The value of --handler; the spawned workers run with the same arguments.
std::string handler_kind(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string_view(argv[i]) == "--") break;
    if (std::string_view(argv[i]) == "--handler") return argv[i + 1];
  }
  return "session";
}

}  // namespace

int main(int argc, char** argv) {
  prefork::CommandLineDefaults defaults;
  defaults.program = "protocol_server";
  defaults.description = "Ends connections every way the protocol API allows (tests only).";
  defaults.listeners = {{prefork::Protocol::stream, prefork::Address::parse("127.0.0.1:0")}};
  defaults.options.push_back({"--handler", "session, function or connection",
                              [](std::string_view value) {
                                if (value != "session" && value != "function" &&
                                    value != "connection")
                                  throw std::invalid_argument(
                                      "--handler: session, function "
                                      "or connection");
                              },
                              "session"});
  const std::string kind = handler_kind(argc, argv);
  if (kind == "function") {
    return prefork::prefork_main(
        argc, argv,
        [](const prefork::Request& request, std::string_view payload, prefork::Reply& reply) {
          if (payload == "close") {
            reply.send("bye");
            reply.close();
          } else if (payload == "abort") {
            reply.send("lost");
            reply.abort();
          } else if (payload == "throw") {
            throw std::runtime_error("throw asked for");
          } else if (payload == "hold") {
            hold();
          } else {
            std::string answer = std::to_string(request.connection);
            answer += ':';
            answer += payload;
            reply.send(answer);
          }
        },
        defaults);
  }
  if (kind == "connection") return prefork::prefork_main(argc, argv, serve_connection, defaults);
  SessionHandler handler;
  return prefork::prefork_main(argc, argv, handler, defaults);
}
