// The master's --metrics endpoint: a minimal HTTP/1.1 server on a thread of
// its own, answering
//   GET /metrics     OpenMetrics, or Prometheus' 0.0.4 text format when the
//                    client's Accept header does not ask for OpenMetrics
//   GET /stats.json  the JSON document prefork-top --json prints
//   GET /health      200 "serving", or 503 "draining" once a stop began
//                    (for a load balancer in front: see --drain-delay)
// from a snapshot of the scoreboard. It reads shared memory only: the
// workers' hot path never knows a scrape happened.
//
// Off the supervisor's thread, so that no client can delay supervision: a
// snapshot of 1024 workers takes 100+ ms to render, a stuck segment up to
// a second, and a flood of scrapes or a slowloris would otherwise hold the
// master's loop. The thread serves up to ~1024 clients at once (fewer under
// a low RLIMIT_NOFILE; the rest wait in the listen backlog), each with 5 s
// to send its request head and 15 s for the whole exchange; the scrapes
// that complete in one turn share one snapshot and one rendering.
//
// Fork: the master forks workers while this thread runs. See the comment
// above the fork handlers in metrics_endpoint.cpp (and docs/NOTES.md) for
// what the thread may hold at a fork and why a worker never needs it.
#pragma once

#include <prefork/address.hpp>
#include <prefork/unique_fd.hpp>

#include "master_service.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace prefork {

// What a request head asks for (parsed without any I/O: fuzzable).
struct MetricsRequest {
  enum class Kind { metrics_text, metrics_openmetrics, json, health, not_found, bad, method };
  Kind kind = Kind::bad;
  bool head_only = false;  // HEAD: the headers without the body
};
MetricsRequest parse_metrics_request(std::string_view head);

class MetricsEndpoint final : public MasterService {
 public:
  // Binds and listens; throws SystemError (e.g. bind) naming the address.
  // Starts the endpoint's thread (with every signal blocked: they stay the
  // master loop's).
  MetricsEndpoint(const Address& address, std::string stats_name);
  // Serves on a socket already listening: the one an old master handed over
  // in a binary upgrade.
  MetricsEndpoint(UniqueFd listener, std::string stats_name);
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;
  // Stops the thread (after the turn it is in) and closes every client.
  ~MetricsEndpoint() override;

  const Address& local() const noexcept { return local_; }

  // Nothing in the master's poll: the endpoint's thread waits on its own.
  void add_poll_fds(std::vector<pollfd>&) override {}
  void serve(std::span<const pollfd>) override {}
  std::optional<Clock::time_point> next_deadline() const override { return std::nullopt; }
  // /health says "draining" from now on. Scrapes are answered during a
  // stop too: the drain is worth watching.
  // (The supervisor always reports draining before a stop begins.)
  void on_drain() override;
  // In a forked worker: closes the listener, the thread's epoll and wake
  // descriptors and every client's (the thread itself does not exist there).
  void close_in_child() noexcept override;
  // The binary upgrade: the scoreboard took its old master's name.
  void rename_scoreboard(std::string stats_name);
  // The listening socket, for the hand-over to a new master.
  int listener_fd() const noexcept { return listener_number_; }
  // A new master took the socket over: the thread closes it (on its next
  // turn; a scrape it accepts meanwhile is still answered).
  void on_handed_over() override;

  struct Impl;  // the thread's state (metrics_endpoint.cpp)

 private:
  void start();

  Address local_;
  int listener_number_ = -1;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace prefork
