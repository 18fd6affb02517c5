#include "metrics_endpoint.hpp"

#include <prefork/error.hpp>
#include <prefork/exposition.hpp>
#include <prefork/listener.hpp>
#include <prefork/log.hpp>
#include <prefork/scoreboard.hpp>

#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace prefork {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t max_request = 8 * 1024;
// A client has this long to send its request head (a slowloris is dropped
// then), and this long for the whole exchange, answer and lingering close.
constexpr auto header_timeout = std::chrono::seconds(5);
constexpr auto total_timeout = std::chrono::seconds(15);
// On EMFILE and its kind, accepting pauses this long (as nginx does).
constexpr auto accept_pause = std::chrono::milliseconds(500);
// Clients accepted per turn, so that a flood of connections leaves time for
// the answers; the rest wait in the backlog for the next turn.
constexpr int accepts_per_turn = 128;
constexpr int backlog = 1024;

// epoll's data for the two descriptors that are not clients.
constexpr std::uint64_t wake_id = 0;
constexpr std::uint64_t listener_id = 1;

// At most 1024 clients at once, fewer when the descriptor limit is low: a
// quarter of it, so that a flood cannot take the descriptors the master
// needs for its workers.
std::size_t client_cap() {
  rlimit limit{};
  const rlim_t soft = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 ? limit.rlim_cur : 1024;
  return std::clamp<rlim_t>(soft / 4, 16, 1024);
}

std::string http_head(std::string_view status, std::string_view content_type,
                      std::size_t content_length) {
  std::string out = "HTTP/1.1 ";
  out += status;
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(content_length);
  out += "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
  return out;
}

// A small answer whole, head and body in one string.
std::string plain(std::string_view status, std::string_view text, bool head_only) {
  std::string body(text);
  body += '\n';
  std::string out = http_head(status, "text/plain; charset=utf-8", body.size());
  if (!head_only) out += body;
  return out;
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

MetricsRequest parse_metrics_request(std::string_view head) {
  using Kind = MetricsRequest::Kind;
  const std::string_view line = head.substr(0, head.find_first_of("\r\n"));
  const std::size_t method_end = line.find(' ');
  const std::size_t target_end =
      line.find(' ', method_end == std::string_view::npos ? 0 : method_end + 1);
  if (method_end == std::string_view::npos || target_end == std::string_view::npos ||
      line.substr(target_end + 1).rfind("HTTP/1.", 0) != 0)
    return {Kind::bad, false};
  const std::string_view method = line.substr(0, method_end);
  std::string_view target = line.substr(method_end + 1, target_end - method_end - 1);
  target = target.substr(0, target.find('?'));
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) return {Kind::method, false};
  if (target == "/health") return {Kind::health, head_only};
  if (target == "/stats.json") return {Kind::json, head_only};
  if (target != "/metrics") return {Kind::not_found, head_only};
  // As Prometheus' own clients do: OpenMetrics only when asked for it.
  const bool openmetrics =
      header_value(head, "accept").find("application/openmetrics-text") != std::string_view::npos;
  return {openmetrics ? Kind::metrics_openmetrics : Kind::metrics_text, head_only};
}

// Everything the endpoint's thread works with. The fields above `clients`
// are shared with the master's thread (atomics, or under a mutex); the rest
// is the endpoint thread's alone.
struct MetricsEndpoint::Impl {
  struct Client {
    enum class Stage { reading, answering, writing, lingering };
    int fd = -1;
    std::size_t slot = 0;  // in `registry`
    Stage stage = Stage::reading;
    Clock::time_point accepted;
    std::string request;
    std::string head;                         // the answer's head, or all of a small one
    std::shared_ptr<const std::string> body;  // a rendering several clients may share
    std::size_t sent = 0;                     // of head, then body
    std::uint32_t watching = EPOLLIN;         // its epoll events
    std::size_t response_size() const { return head.size() + (body ? body->size() : 0); }
    Clock::time_point deadline() const {
      return accepted + (stage == Stage::reading ? header_timeout : total_timeout);
    }
  };

  Impl(UniqueFd listening, std::string name);
  void run();
  void close_in_child() noexcept;
  void close_all() noexcept;

  std::atomic<bool> draining{false};
  std::atomic<bool> stopping{false};
  std::atomic<bool> handed_over{false};
  std::mutex name_mutex;
  std::string stats_name;  // under name_mutex

  // What a forked child must close, kept whole across every fork: the
  // thread changes it (and opens or closes a descriptor) only under
  // fd_mutex, which the fork handlers hold across fork().
  std::mutex fd_mutex;
  UniqueFd listener;
  std::vector<int> registry;        // the clients' descriptors, -1 where free
  std::vector<std::size_t> unused;  // free slots of registry (reserved: no allocation)
  const UniqueFd epoll;
  const UniqueFd wake;  // an eventfd: stop, hand-over

  // The thread's own.
  std::unordered_map<std::uint64_t, Client> clients;
  std::uint64_t next_id = listener_id + 1;
  std::vector<std::uint64_t> pending;  // requests complete this turn, to answer
  // Opened with the endpoint, before any worker runs: the counts it fixes
  // then come from the header as the master wrote it, not as a worker may
  // have scribbled over it since.
  std::optional<ScoreboardReader> reader;
  bool listener_armed = true;
  Clock::time_point accept_resume{};  // after EMFILE
  Clock::time_point next_sweep = Clock::time_point::max();

 private:
  void handle_wake();
  void accept_clients(Clock::time_point now);
  void step(std::uint64_t id, Client& client);
  bool read_request(std::uint64_t id, Client& client);  // false: finished with it
  bool write_response(Client& client);
  bool discard_input(Client& client);
  void answer_pending();
  void drop(std::uint64_t id);
  void sweep(Clock::time_point now);
  void update_listener(Clock::time_point now);
  void follow(std::uint64_t id, Client& client);
  int wait_timeout(Clock::time_point now) const;
};

namespace {

UniqueFd make_epoll() {
  UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd) throw SystemError("epoll_create1", errno, "for the metrics endpoint");
  return fd;
}

UniqueFd make_wake() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) throw SystemError("eventfd", errno, "for the metrics endpoint");
  return fd;
}

void add_to_epoll(int epoll, int fd, std::uint64_t id) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = id;
  if (::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0)
    throw SystemError("epoll_ctl", errno, "for the metrics endpoint");
}

// ---- Fork ----
//
// The master forks workers (and, for an upgrade, a new master) while the
// endpoint's thread runs, and a forked worker goes on in this image without
// exec: it must never need what the thread held at that instant.
//  - The descriptors: a worker must not keep the endpoint's listener or a
//    client (a dropped slowloris would stay open in it). The thread opens
//    and closes them, and changes the registry of them, only under
//    fd_mutex; these handlers take fd_mutex across fork(), so the child's
//    copy of the registry is whole, and the worker's close_in_child()
//    closes them all. (The upgrade's child needs the listener: it execs,
//    and every one of these descriptors is close-on-exec.)
//  - Locks the thread may hold at a fork: malloc's (glibc's fork takes and
//    resets them), the endpoint's name_mutex and a first-use static's guard
//    in the scoreboard reader or the exposition (neither is ever used by a
//    worker), and gettext's reader lock inside strerror_r when it logs a
//    failure (a reader lock held does not stop the child's readers). It
//    uses no stdio stream (the log writes with write(2)) and no iostream.
//  - Signals: the thread blocks them all, so handlers run where they did.
std::atomic<MetricsEndpoint::Impl*> forking_endpoint{nullptr};

void before_fork() {
  if (MetricsEndpoint::Impl* impl = forking_endpoint.load(std::memory_order_acquire))
    impl->fd_mutex.lock();
}

void after_fork_in_parent() {
  if (MetricsEndpoint::Impl* impl = forking_endpoint.load(std::memory_order_acquire))
    impl->fd_mutex.unlock();
}

// The child has one thread: the one that forked, which took the lock. Its
// own forks (a fork-per-connection worker's) are none of the endpoint's.
void after_fork_in_child() {
  if (MetricsEndpoint::Impl* impl = forking_endpoint.exchange(nullptr)) impl->fd_mutex.unlock();
}

void install_fork_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const int error = ::pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child))
      throw SystemError("pthread_atfork", error, "for the metrics endpoint");
  });
}

}  // namespace

MetricsEndpoint::Impl::Impl(UniqueFd listening, std::string name)
    : stats_name(std::move(name)),
      listener(std::move(listening)),
      epoll(make_epoll()),
      wake(make_wake()) {
  const std::size_t cap = client_cap();
  registry.assign(cap, -1);
  unused.reserve(cap);
  for (std::size_t slot = cap; slot-- > 0;) unused.push_back(slot);
  clients.reserve(cap);
  add_to_epoll(epoll.get(), wake.get(), wake_id);
  add_to_epoll(epoll.get(), listener.get(), listener_id);
  reader.emplace(ScoreboardReader::open(stats_name));
}

MetricsEndpoint::MetricsEndpoint(const Address& address, std::string stats_name) {
  ListenOptions options;
  options.backlog = backlog;
  std::vector<Listener> opened = open_listeners({ListenerSpec{Protocol::stream, address}}, options);
  local_ = opened.front().local;
  listener_number_ = opened.front().fd.get();
  impl_ = std::make_unique<Impl>(std::move(opened.front().fd), std::move(stats_name));
  start();
}

MetricsEndpoint::MetricsEndpoint(UniqueFd listener, std::string stats_name)
    : local_(Address::of_socket(listener.get())), listener_number_(listener.get()) {
  impl_ = std::make_unique<Impl>(std::move(listener), std::move(stats_name));
  start();
}

void MetricsEndpoint::start() {
  install_fork_handlers();
  Impl* expected = nullptr;
  if (!forking_endpoint.compare_exchange_strong(expected, impl_.get()))
    throw std::logic_error("one metrics endpoint per process");
  // Created with every signal blocked, which the thread keeps.
  sigset_t all, previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  try {
    thread_ = std::thread([impl = impl_.get()] { impl->run(); });
  } catch (...) {
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    forking_endpoint.store(nullptr);
    throw;
  }
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

MetricsEndpoint::~MetricsEndpoint() {
  impl_->stopping.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  if (::write(impl_->wake.get(), &one, sizeof one) < 0)
    log_sys_error("write", errno, "waking the metrics endpoint's thread");
  if (thread_.joinable()) thread_.join();
  Impl* self = impl_.get();
  forking_endpoint.compare_exchange_strong(self, nullptr);
  impl_->close_all();
}

void MetricsEndpoint::on_drain() { impl_->draining.store(true, std::memory_order_relaxed); }

void MetricsEndpoint::close_in_child() noexcept { impl_->close_in_child(); }

void MetricsEndpoint::rename_scoreboard(std::string stats_name) {
  std::lock_guard lock(impl_->name_mutex);
  impl_->stats_name = std::move(stats_name);
}

void MetricsEndpoint::on_handed_over() {
  impl_->handed_over.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  if (::write(impl_->wake.get(), &one, sizeof one) < 0)
    log_sys_error("write", errno, "waking the metrics endpoint's thread");
}

// In the child, with one thread and the registry whole (the fork handlers).
void MetricsEndpoint::Impl::close_in_child() noexcept {
  for (int& fd : registry)
    if (fd >= 0) ::close(std::exchange(fd, -1));
  listener.reset();
  ::close(epoll.get());
  ::close(wake.get());
}

// After the thread has ended.
void MetricsEndpoint::Impl::close_all() noexcept {
  std::lock_guard lock(fd_mutex);
  for (int& fd : registry)
    if (fd >= 0) ::close(std::exchange(fd, -1));
  listener.reset();
  clients.clear();
}

void MetricsEndpoint::Impl::run() {
  std::vector<epoll_event> events(256);
  while (!stopping.load(std::memory_order_acquire)) {
    const int n = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()),
                               wait_timeout(Clock::now()));
    if (n < 0) {
      if (errno == EINTR) continue;
      log_sys_error("epoll_wait", errno, "in the metrics endpoint: it stops serving");
      return;
    }
    const auto now = Clock::now();
    for (int i = 0; i < n; ++i) {
      const std::uint64_t id = events[i].data.u64;
      if (id == wake_id) {
        handle_wake();
      } else if (id == listener_id) {
        accept_clients(now);
      } else if (auto found = clients.find(id); found != clients.end()) {
        step(id, found->second);
      }
    }
    answer_pending();
    if (now >= next_sweep) sweep(now);
    update_listener(now);
  }
}

void MetricsEndpoint::Impl::handle_wake() {
  std::uint64_t count = 0;
  if (::read(wake.get(), &count, sizeof count) < 0 && errno != EAGAIN)
    log_sys_error("read", errno, "the metrics endpoint's eventfd");
  if (handed_over.load(std::memory_order_acquire) && listener) {
    std::lock_guard lock(fd_mutex);
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, listener.get(), nullptr);
    listener.reset();
  }
}

int MetricsEndpoint::Impl::wait_timeout(Clock::time_point now) const {
  Clock::time_point wake_at = next_sweep;
  if (listener && !listener_armed && accept_resume > now)
    wake_at = std::min(wake_at, accept_resume);
  if (wake_at == Clock::time_point::max()) return -1;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 60'000));
}

// The listener is watched while there is room for a client and accepting is
// not paused after EMFILE; otherwise the kernel's backlog holds the rest.
void MetricsEndpoint::Impl::update_listener(Clock::time_point now) {
  if (!listener) return;
  const bool wanted = clients.size() < registry.size() && now >= accept_resume;
  if (wanted == listener_armed) return;
  epoll_event event{};
  event.events = wanted ? std::uint32_t{EPOLLIN} : 0u;
  event.data.u64 = listener_id;
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_MOD, listener.get(), &event) != 0) {
    log_sys_error("epoll_ctl", errno, "the metrics endpoint's listener");
    return;
  }
  listener_armed = wanted;
}

void MetricsEndpoint::Impl::accept_clients(Clock::time_point now) {
  for (int accepted = 0; accepted < accepts_per_turn && !unused.empty() && listener; ++accepted) {
    int fd = -1;
    int error = 0;
    std::size_t slot = 0;
    {
      // Accepted and registered in one step: a fork never copies a client
      // that a worker would not know to close.
      std::lock_guard lock(fd_mutex);
      fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        slot = unused.back();
        unused.pop_back();
        registry[slot] = fd;
      } else {
        error = errno;
      }
    }
    if (fd < 0) {
      if (error == EINTR || error == ECONNABORTED) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) return;
      log_sys_error("accept4", error, "on the metrics endpoint: accepting again in %lld ms",
                    static_cast<long long>(accept_pause.count()));
      accept_resume = now + accept_pause;
      return;
    }
    const std::uint64_t id = next_id++;
    Client& client = clients[id];
    client.fd = fd;
    client.slot = slot;
    client.accepted = now;
    next_sweep = std::min(next_sweep, client.deadline());
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = id;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
      log_sys_error("epoll_ctl", errno, "a metrics client");
      drop(id);
      continue;
    }
    // Most requests are already here: read without another turn.
    step(id, client);
  }
}

void MetricsEndpoint::Impl::step(std::uint64_t id, Client& client) {
  bool keep = true;
  switch (client.stage) {
    case Client::Stage::reading:
      keep = read_request(id, client);
      break;
    case Client::Stage::answering:
      break;  // answered at the end of this turn
    case Client::Stage::writing:
      keep = write_response(client);
      break;
    case Client::Stage::lingering:
      keep = discard_input(client);
      break;
  }
  if (keep)
    follow(id, client);
  else
    drop(id);
}

// Writable while it has an answer to take, readable otherwise.
void MetricsEndpoint::Impl::follow(std::uint64_t id, Client& client) {
  const std::uint32_t wanted =
      client.stage == Client::Stage::writing ? std::uint32_t{EPOLLOUT} : std::uint32_t{EPOLLIN};
  if (wanted == client.watching) return;
  epoll_event event{};
  event.events = wanted;
  event.data.u64 = id;
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_MOD, client.fd, &event) != 0)
    log_sys_error("epoll_ctl", errno, "a metrics client");
  else
    client.watching = wanted;
}

bool MetricsEndpoint::Impl::read_request(std::uint64_t id, Client& client) {
  char buffer[2048];
  for (;;) {
    const ssize_t n = ::recv(client.fd, buffer, sizeof buffer, 0);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;  // else the client went away
    }
    client.request.append(buffer, static_cast<std::size_t>(n));
    const bool complete = client.request.find("\r\n\r\n") != std::string::npos ||
                          client.request.find("\n\n") != std::string::npos;
    if (client.request.size() > max_request) {
      client.head = plain("431 Request Header Fields Too Large", "request too large", false);
      client.stage = Client::Stage::writing;
      return write_response(client);
    }
    if (complete) {
      client.stage = Client::Stage::answering;
      pending.push_back(id);
      return true;
    }
  }
}

// The requests complete this turn, answered from one snapshot: a flood of
// scrapes costs one rendering per turn and format, not one per scrape.
void MetricsEndpoint::Impl::answer_pending() {
  if (pending.empty()) return;
  using Kind = MetricsRequest::Kind;
  std::optional<ScoreboardSnapshot> snapshot;
  std::string failure;  // why there is no snapshot
  std::string name;
  std::shared_ptr<const std::string> rendered[3];  // text, OpenMetrics, JSON
  const bool is_draining = draining.load(std::memory_order_relaxed);
  for (const std::uint64_t id : pending) {
    auto found = clients.find(id);
    if (found == clients.end()) continue;
    Client& client = found->second;
    const MetricsRequest request = parse_metrics_request(client.request);
    client.request = std::string();
    const bool head_only = request.head_only;
    switch (request.kind) {
      case Kind::bad:
        client.head = plain("400 Bad Request", "not an HTTP/1.x request line", false);
        break;
      case Kind::method:
        client.head = plain("405 Method Not Allowed", "only GET and HEAD", false);
        break;
      case Kind::not_found:
        client.head = plain("404 Not Found", "try /metrics, /stats.json or /health", head_only);
        break;
      case Kind::health:
        client.head = is_draining ? plain("503 Service Unavailable", "draining", head_only)
                                  : plain("200 OK", "serving", head_only);
        break;
      case Kind::metrics_text:
      case Kind::metrics_openmetrics:
      case Kind::json: {
        if (!snapshot && failure.empty()) {
          {
            std::lock_guard lock(name_mutex);
            name = stats_name;
          }
          try {
            if (!reader) reader.emplace(ScoreboardReader::open(name));
            snapshot = reader->snapshot();
          } catch (const std::exception& e) {
            failure = e.what();
            log_info("metrics endpoint: %s", failure.c_str());
          }
        }
        if (!snapshot) {
          client.head = plain("503 Service Unavailable", failure, head_only);
          break;
        }
        const int index = request.kind == Kind::metrics_text          ? 0
                          : request.kind == Kind::metrics_openmetrics ? 1
                                                                      : 2;
        if (!rendered[index])
          rendered[index] = std::make_shared<const std::string>(
              index == 2 ? render_json(*snapshot, name) + "\n"
                         : render_metrics(*snapshot, index == 0 ? MetricsFormat::prometheus_text
                                                                : MetricsFormat::openmetrics));
        const std::string_view type =
            index == 2 ? std::string_view("application/json")
                       : metrics_content_type(index == 0 ? MetricsFormat::prometheus_text
                                                         : MetricsFormat::openmetrics);
        client.head = http_head("200 OK", type, rendered[index]->size());
        if (!head_only) client.body = rendered[index];
        break;
      }
    }
    client.stage = Client::Stage::writing;
    if (write_response(client))
      follow(id, client);
    else
      drop(id);
  }
  pending.clear();
}

bool MetricsEndpoint::Impl::write_response(Client& client) {
  while (client.sent < client.response_size()) {
    iovec parts[2];
    int count = 0;
    if (client.sent < client.head.size())
      parts[count++] = {client.head.data() + client.sent, client.head.size() - client.sent};
    if (client.body) {
      const std::size_t from =
          client.sent > client.head.size() ? client.sent - client.head.size() : 0;
      parts[count++] = {const_cast<char*>(client.body->data()) + from, client.body->size() - from};
    }
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = static_cast<std::size_t>(count);
    const ssize_t n = ::sendmsg(client.fd, &message, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    client.sent += static_cast<std::size_t>(n);
  }
  // As nginx's lingering close: closing with unread input would send a
  // reset, which may destroy the answer before the client reads it. Stop
  // writing, and close once the client has closed too (or at the deadline).
  ::shutdown(client.fd, SHUT_WR);
  client.stage = Client::Stage::lingering;
  client.head = std::string();
  client.body.reset();
  return discard_input(client);
}

bool MetricsEndpoint::Impl::discard_input(Client& client) {
  char buffer[2048];
  for (;;) {
    const ssize_t n = ::recv(client.fd, buffer, sizeof buffer, 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

void MetricsEndpoint::Impl::drop(std::uint64_t id) {
  auto found = clients.find(id);
  if (found == clients.end()) return;
  Client& client = found->second;
  ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, client.fd, nullptr);
  {
    std::lock_guard lock(fd_mutex);
    ::close(client.fd);
    registry[client.slot] = -1;
    unused.push_back(client.slot);
  }
  clients.erase(found);
}

// Drops the clients past their deadline: still sending the request head
// after header_timeout, or not done after total_timeout.
void MetricsEndpoint::Impl::sweep(Clock::time_point now) {
  std::vector<std::uint64_t> late;
  next_sweep = Clock::time_point::max();
  for (const auto& [id, client] : clients) {
    const auto deadline = client.deadline();
    if (now >= deadline)
      late.push_back(id);
    else
      next_sweep = std::min(next_sweep, deadline);
  }
  for (const std::uint64_t id : late) drop(id);
}

}  // namespace prefork
