// kv_server: a key-value store over lines of text, one command per line
// (LF or CRLF), a session per connection:
//
//   SET key value   -> OK            GET key  -> the value, or NIL
//   DEL key         -> 1 or 0        QUIT     -> BYE, and the server closes
//   anything else   -> ERR unknown command (the connection stays)
//   a line over the limit (64 KiB by default, --max-message) -> ERR line too long,
//   and the server closes
//
// The store lives in the worker process: with --workers 1 every connection
// sees the same one; with more, each worker has its own (see README.md).
//
//   build/bin/kv_server --tcp 127.0.0.1:7070 --workers 1
//   python3 examples/kv_server/kv_client.py --port 7070 "SET a 1" "GET a"
#include <prefork/command_line.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace {

// The worker's store. Locked, because the thread models call sessions of
// several connections at once.
class Store {
 public:
  void set(std::string_view key, std::string_view value) {
    std::lock_guard lock(mutex_);
    values_.insert_or_assign(std::string(key), std::string(value));
  }
  std::optional<std::string> get(std::string_view key) const {
    std::lock_guard lock(mutex_);
    auto found = values_.find(std::string(key));
    if (found == values_.end()) return std::nullopt;
    return found->second;
  }
  bool remove(std::string_view key) {
    std::lock_guard lock(mutex_);
    return values_.erase(std::string(key)) > 0;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::string> values_;
};

// The first word of `line`, and the rest after one space.
std::pair<std::string_view, std::string_view> split(std::string_view line) {
  const std::size_t space = line.find(' ');
  if (space == std::string_view::npos) return {line, {}};
  return {line.substr(0, space), line.substr(space + 1)};
}

// One connection: nothing of it outlives it (a client that leaves mid-line
// leaves nothing behind: its half line was the codec's, in its buffer).
class KvSession final : public prefork::Session {
 public:
  explicit KvSession(Store& store) : store_(store) {}

  void on_message(std::string_view line, prefork::Reply& reply) override {
    auto [command, rest] = split(line);
    if (command == "SET" && !rest.empty()) {
      auto [key, value] = split(rest);
      store_.set(key, value);
      reply.send("OK");
    } else if (command == "GET" && !rest.empty()) {
      auto value = store_.get(rest);
      reply.send(value ? *value : "NIL");
    } else if (command == "DEL" && !rest.empty()) {
      reply.send(store_.remove(rest) ? "1" : "0");
    } else if (command == "QUIT") {
      reply.send("BYE");
      reply.close();
    } else {
      reply.send("ERR unknown command");
    }
  }

  void on_close(prefork::CloseReason reason, prefork::Reply& reply) override {
    if (reason == prefork::CloseReason::limit_exceeded) reply.send("ERR line too long");
  }

 private:
  Store& store_;
};

class KvHandler final : public prefork::Handler {
 public:
  const prefork::Codec& codec(std::size_t, prefork::Protocol) override { return lines_; }
  std::unique_ptr<prefork::Session> open_session(const prefork::Request&) override {
    return std::make_unique<KvSession>(store_);
  }

 private:
  prefork::LineCodec lines_;
  Store store_;
};

}  // namespace

int main(int argc, char** argv) {
  KvHandler handler;
  prefork::CommandLineDefaults defaults;
  defaults.program = "kv_server";
  defaults.description = "A key-value store over lines: SET k v, GET k, DEL k, QUIT.";
  defaults.listeners = {{prefork::Protocol::stream, prefork::Address::parse("127.0.0.1:7070")}};
  defaults.max_message = 64 * 1024;
  return prefork::prefork_main(argc, argv, handler, defaults);
}
