#include "metrics_endpoint.hpp"

#include <prefork/error.hpp>
#include <prefork/exposition.hpp>
#include <prefork/listener.hpp>
#include <prefork/log.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace prefork {

namespace {

constexpr std::size_t max_clients = 16;
constexpr std::size_t max_request = 8 * 1024;
constexpr auto client_timeout = std::chrono::seconds(5);

std::string http_response(std::string_view status, std::string_view content_type,
                          const std::string& body, bool head) {
  std::string out = "HTTP/1.1 ";
  out += status;
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size());
  out += "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head) out += body;
  return out;
}

std::string plain(std::string_view status, const std::string& text, bool head = false) {
  return http_response(status, "text/plain; charset=utf-8", text + "\n", head);
}

// Header names are case-insensitive (RFC 9110).
bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

// The value of header `name` in the request head, or empty.
std::string_view header_value(std::string_view head, std::string_view name) {
  std::size_t line = head.find('\n');
  while (line != std::string_view::npos) {
    std::string_view rest = head.substr(line + 1);
    std::string_view text = rest.substr(0, rest.find('\n'));
    if (starts_with_nocase(text, name) && text.size() > name.size() && text[name.size()] == ':')
      return text.substr(name.size() + 1);
    line = head.find('\n', line + 1);
  }
  return {};
}

}  // namespace

MetricsEndpoint::MetricsEndpoint(const Address& address, std::string stats_name)
    : stats_name_(std::move(stats_name)) {
  ListenOptions options;
  options.backlog = 64;
  std::vector<Listener> opened = open_listeners({ListenerSpec{Protocol::stream, address}}, options);
  listener_ = std::move(opened.front().fd);
  local_ = opened.front().local;
  reader_.emplace(ScoreboardReader::open(stats_name_));
}

MetricsEndpoint::MetricsEndpoint(UniqueFd listener, std::string stats_name)
    : listener_(std::move(listener)),
      local_(Address::of_socket(listener_.get())),
      stats_name_(std::move(stats_name)),
      reader_(ScoreboardReader::open(stats_name_)) {}

void MetricsEndpoint::on_handed_over() { listener_.reset(); }

void MetricsEndpoint::add_poll_fds(std::vector<pollfd>& fds) {
  // Once handed over the listener is -1, which poll() skips.
  fds.push_back(
      pollfd{listener_.get(), static_cast<short>(clients_.size() < max_clients ? POLLIN : 0), 0});
  for (const Client& client : clients_)
    fds.push_back(pollfd{
        client.fd.get(),
        static_cast<short>(client.response.empty() || client.lingering ? POLLIN : POLLOUT), 0});
}

void MetricsEndpoint::serve(std::span<const pollfd> fds) {
  const auto now = Clock::now();
  // The clients polled this turn are the first fds.size() - 1 (accepted
  // ones come after them).
  const std::size_t polled = fds.size() > 1 ? fds.size() - 1 : 0;
  std::vector<bool> done(clients_.size(), false);
  for (std::size_t i = 0; i < clients_.size(); ++i) {
    Client& client = clients_[i];
    const short events = i < polled ? fds[1 + i].revents : 0;
    if (events != 0)
      done[i] = client.lingering          ? !discard_input(client)
                : client.response.empty() ? !read_request(client)
                                          : !write_response(client);
    if (!done[i] && now >= client.deadline) done[i] = true;  // too slow: dropped
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < clients_.size(); ++i)
    if (!done[i]) clients_[kept++] = std::move(clients_[i]);
  clients_.resize(kept);
  if (!fds.empty() && (fds.front().revents & POLLIN)) accept_clients();
}

std::optional<MetricsEndpoint::Clock::time_point> MetricsEndpoint::next_deadline() const {
  if (clients_.empty()) return std::nullopt;
  return std::min_element(clients_.begin(), clients_.end(),
                          [](const Client& a, const Client& b) { return a.deadline < b.deadline; })
      ->deadline;
}

void MetricsEndpoint::close_in_child() noexcept {
  listener_.reset();
  for (Client& client : clients_) client.fd.reset();
}

void MetricsEndpoint::accept_clients() {
  while (clients_.size() < max_clients) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED && errno != EINTR)
        log_sys_error("accept4", errno, "on the metrics endpoint %s", local_.to_string().c_str());
      return;
    }
    Client client;
    client.fd = UniqueFd(fd);
    client.deadline = Clock::now() + client_timeout;
    clients_.push_back(std::move(client));
    // Most requests are already here: answer without another turn.
    if (!read_request(clients_.back())) clients_.pop_back();
  }
}

bool MetricsEndpoint::read_request(Client& client) {
  char buffer[2048];
  for (;;) {
    ssize_t n = ::recv(client.fd.get(), buffer, sizeof buffer, 0);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return false;  // the client went away
    }
    client.request.append(buffer, static_cast<std::size_t>(n));
    const bool complete = client.request.find("\r\n\r\n") != std::string::npos ||
                          client.request.find("\n\n") != std::string::npos;
    if (complete || client.request.size() > max_request) {
      client.response = client.request.size() > max_request
                            ? plain("431 Request Header Fields Too Large", "request too large")
                            : respond(client.request);
      return write_response(client);
    }
  }
}

bool MetricsEndpoint::write_response(Client& client) {
  while (client.sent < client.response.size()) {
    ssize_t n = ::send(client.fd.get(), client.response.data() + client.sent,
                       client.response.size() - client.sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    client.sent += static_cast<std::size_t>(n);
  }
  // As nginx's lingering close: closing with unread input would send a
  // reset, which may destroy the answer before the client reads it. Stop
  // writing, and close once the client has closed too (or at the deadline).
  ::shutdown(client.fd.get(), SHUT_WR);
  client.lingering = true;
  return discard_input(client);
}

bool MetricsEndpoint::discard_input(Client& client) {
  char buffer[2048];
  for (;;) {
    ssize_t n = ::recv(client.fd.get(), buffer, sizeof buffer, 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

std::string MetricsEndpoint::respond(const std::string& request) {
  const std::string_view head(request);
  const std::string_view line = head.substr(0, head.find_first_of("\r\n"));
  const std::size_t method_end = line.find(' ');
  const std::size_t target_end =
      line.find(' ', method_end == std::string_view::npos ? 0 : method_end + 1);
  if (method_end == std::string_view::npos || target_end == std::string_view::npos ||
      line.substr(target_end + 1).rfind("HTTP/1.", 0) != 0)
    return plain("400 Bad Request", "not an HTTP/1.x request line");
  const std::string_view method = line.substr(0, method_end);
  std::string_view target = line.substr(method_end + 1, target_end - method_end - 1);
  target = target.substr(0, target.find('?'));
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only)
    return http_response("405 Method Not Allowed", "text/plain; charset=utf-8",
                         "only GET and HEAD\n", false);
  if (target == "/health")
    return draining_ ? plain("503 Service Unavailable", "draining", head_only)
                     : plain("200 OK", "serving", head_only);
  if (target != "/metrics" && target != "/stats.json")
    return plain("404 Not Found", "try /metrics, /stats.json or /health", head_only);

  ScoreboardSnapshot snapshot;
  try {
    if (!reader_) reader_.emplace(ScoreboardReader::open(stats_name_));
    // Never waits on a sequence: a stuck one is reported, not spun on, in
    // the master's own loop.
    snapshot = reader_->snapshot(ScoreboardReader::Latencies::copied, ScoreboardReader::Wait::none);
  } catch (const std::exception& e) {
    log_info("metrics endpoint: %s", e.what());
    return plain("503 Service Unavailable", e.what(), head_only);
  }
  if (target == "/stats.json")
    return http_response("200 OK", "application/json", render_json(snapshot, stats_name_) + "\n",
                         head_only);
  // As Prometheus' own clients do: OpenMetrics only when asked for it.
  const bool openmetrics =
      header_value(head, "accept").find("application/openmetrics-text") != std::string_view::npos;
  const MetricsFormat format =
      openmetrics ? MetricsFormat::openmetrics : MetricsFormat::prometheus_text;
  return http_response("200 OK", metrics_content_type(format), render_metrics(snapshot, format),
                       head_only);
}

}  // namespace prefork
