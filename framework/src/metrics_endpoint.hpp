// The master's --metrics endpoint: a minimal HTTP/1.1 server inside the
// master's own poll loop (as the pass Dispatcher is), answering
//   GET /metrics     OpenMetrics, or Prometheus' 0.0.4 text format when the
//                    client's Accept header does not ask for OpenMetrics
//   GET /stats.json  the JSON document prefork-top --json prints
//   GET /health      200 "serving", or 503 "draining" once a stop began
//                    (for a load balancer in front: see --drain-delay)
// from a snapshot of the scoreboard. It reads shared memory only: the
// workers' hot path never knows a scrape happened.
//
// Bounded, so that a slow or hostile client cannot stall the master: a
// handful of clients at once, a request of at most 8 KiB, a few seconds
// each, one request per connection (Connection: close).
#pragma once

#include <prefork/address.hpp>
#include <prefork/scoreboard.hpp>
#include <prefork/unique_fd.hpp>

#include "master_service.hpp"

#include <poll.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace prefork {

class MetricsEndpoint final : public MasterService {
 public:
  // Binds and listens; throws SystemError (e.g. bind) naming the address.
  MetricsEndpoint(const Address& address, std::string stats_name);
  // Serves on a socket already listening: the one an old master handed over
  // in a binary upgrade.
  MetricsEndpoint(UniqueFd listener, std::string stats_name);
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  const Address& local() const noexcept { return local_; }

  // What to wait on this turn: the listener, then each client.
  void add_poll_fds(std::vector<pollfd>& fds) override;
  // After the poll: accept, read, answer; drops clients past their deadline.
  // Scrapes are answered during a stop too: the drain is worth watching.
  void serve(std::span<const pollfd> polled) override;
  // The earliest client deadline, for the master's poll timeout.
  std::optional<Clock::time_point> next_deadline() const override;
  // /health says "draining" from now on.
  // (The supervisor always reports draining before a stop begins.)
  void on_drain() override { draining_ = true; }
  void close_in_child() noexcept override;
  // The binary upgrade: the scoreboard took its old master's name.
  void rename_scoreboard(std::string stats_name) { stats_name_ = std::move(stats_name); }
  // The listening socket, for the hand-over to a new master.
  int listener_fd() const noexcept { return listener_.get(); }
  // A new master took the socket over: scrapes go to it from now on.
  void on_handed_over() override;

 private:
  struct Client {
    UniqueFd fd;
    std::string request;
    std::string response;
    std::size_t sent = 0;
    bool lingering = false;  // answered; reading what the client still sends
    Clock::time_point deadline;
  };

  void accept_clients();
  bool read_request(Client& client);  // false: finished with it
  bool write_response(Client& client);
  bool discard_input(Client& client);
  std::string respond(const std::string& request);

  UniqueFd listener_;
  Address local_;
  std::string stats_name_;
  // Opened with the endpoint, before any worker runs: the counts it fixes
  // then come from the header as the master wrote it, not as a worker may
  // have scribbled over it since.
  std::optional<ScoreboardReader> reader_;
  std::vector<Client> clients_;
  bool draining_ = false;
};

}  // namespace prefork
