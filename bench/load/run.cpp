#include "run.hpp"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <prefork/error.hpp>

#include "clock.hpp"
#include "driver.hpp"
#include "report.hpp"

namespace bench {

namespace {

constexpr std::uint64_t main_poll_ns = 10 * ns_per_ms;

// Each connection is a descriptor (two for a moment with --new-connection,
// closing one while opening the next), plus an epoll per thread.
void ensure_descriptors(std::uint64_t needed) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) throw prefork::SystemError("getrlimit", errno);
  if (limit.rlim_cur >= needed) return;
  if (limit.rlim_max < needed)
    throw std::runtime_error("these connections need " + std::to_string(needed) +
                             " file descriptors; the hard limit (ulimit -Hn) is " +
                             std::to_string(limit.rlim_max));
  limit.rlim_cur = needed;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
    throw prefork::SystemError("setrlimit", errno, "RLIMIT_NOFILE");
}

// Connection i goes to thread i % T, with its part of --requests and of
// --rate; the threads' schedules are offset so that their requests interleave.
std::vector<DriverPlan> make_plans(const Options& o) {
  std::vector<DriverPlan> plans(o.threads);
  for (auto& plan : plans) {
    plan.connections = 0;
    if (o.requests != 0) plan.share = 0;
  }
  for (unsigned i = 0; i < o.connections; ++i) {
    DriverPlan& plan = plans[i % o.threads];
    ++plan.connections;
    if (o.requests != 0)
      plan.share += o.requests / o.connections + (i < o.requests % o.connections ? 1 : 0);
  }
  for (unsigned j = 0; j < o.threads; ++j) {
    if (o.rate <= 0) break;
    plans[j].rate = o.rate * plans[j].connections / o.connections;
    plans[j].phase_ns = static_cast<std::uint64_t>(j * 1e9 / o.rate);
  }
  return plans;
}

Phases phases_from(const Options& o, std::uint64_t start) {
  const auto warmup = static_cast<std::uint64_t>(o.warmup_s * 1e9);
  const auto duration = static_cast<std::uint64_t>(std::min(o.duration_s, max_duration_s) * 1e9);
  return {start, start + warmup, start + warmup + duration};
}

void sleep_until(std::uint64_t time) {
  const timespec when{static_cast<time_t>(time / ns_per_s), static_cast<long>(time % ns_per_s)};
  ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &when, nullptr);  // EINTR: caller re-checks
}

double seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; }

}  // namespace

RunResult run_load(const Options& o, const Exchange& exchange, const std::atomic<bool>& interrupt) {
  ensure_descriptors(2ull * o.connections + o.threads + 32);
  std::vector<std::unique_ptr<Driver>> drivers;
  for (const DriverPlan& plan : make_plans(o))
    drivers.push_back(std::make_unique<Driver>(o, exchange, plan));

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> start_ns{0};
  std::atomic<std::size_t> finished{0};
  // Load starts when every thread has opened its connections; the last to
  // arrive fixes the start time for all.
  auto mark_start = [&start_ns]() noexcept { start_ns.store(now_ns()); };
  std::barrier line_up(static_cast<std::ptrdiff_t>(drivers.size() + 1), mark_start);

  std::vector<std::thread> threads;
  threads.reserve(drivers.size());
  try {
    for (auto& driver : drivers) {
      threads.emplace_back([&o, &stop, &line_up, &start_ns, &finished, d = driver.get()] {
        d->open_connections(now_ns() + o.timeout_ms * ns_per_ms, stop);
        line_up.arrive_and_wait();
        d->run(phases_from(o, start_ns.load()), stop);
        finished.fetch_add(1);
      });
    }
  } catch (...) {
    stop = true;
    for (std::size_t missing = threads.size(); missing <= drivers.size(); ++missing)
      line_up.arrive_and_drop();  // the threads never started, and this one
    for (auto& thread : threads) thread.join();
    throw;
  }
  line_up.arrive_and_wait();
  const Phases phases = phases_from(o, start_ns.load());

  RunResult result;
  const bool show_progress = !o.quiet && ::isatty(STDERR_FILENO) == 1;
  std::uint64_t next_tick = phases.start + ns_per_s, last_count = 0;
  rusage before{}, after{};
  std::uint64_t cpu_from = 0;
  bool measuring = false;
  while (finished.load() < drivers.size()) {
    const std::uint64_t now = now_ns();
    if (interrupt.load(std::memory_order_relaxed) && !stop.load()) {
      stop = true;
      result.interrupted = true;
    }
    if (!measuring && now >= phases.measure_start) {
      ::getrusage(RUSAGE_SELF, &before);
      cpu_from = now;
      measuring = true;
    }
    if (show_progress && now >= next_tick) {
      std::uint64_t done = 0, errors = 0;
      for (const auto& d : drivers) {
        done += d->completed();
        errors += d->failed();
      }
      print_progress(static_cast<double>(now - phases.start) / 1e9, !measuring, done,
                     static_cast<double>(done - last_count), errors);
      last_count = done;
      next_tick += ns_per_s;
    }
    sleep_until(measuring ? now + main_poll_ns
                          : std::min(now + main_poll_ns, phases.measure_start));
  }
  ::getrusage(RUSAGE_SELF, &after);
  const std::uint64_t cpu_to = now_ns();
  if (!measuring) {
    before = after;
    cpu_from = cpu_to;
  }
  if (show_progress) clear_progress();
  for (auto& thread : threads) thread.join();

  result.latency = std::make_unique<prefork::Histogram>();
  std::uint64_t finished_at = phases.measure_start;
  for (auto& d : drivers) {
    DriverResult& r = d->result();
    result.latency->merge(*r.latency);
    result.errors.merge(r.errors);
    finished_at = std::max(finished_at, r.finished_ns);
    result.in_flight_at_end += r.in_flight_at_end;
    result.behind_schedule += r.behind_schedule;
    result.starved_connections += r.starved_connections;
    if (r.broken && !result.broken) {
      result.broken = true;
      result.fatal = r.fatal;
    }
  }
  result.requests = result.latency->count();
  result.duration_s =
      static_cast<double>(std::min(finished_at, phases.measure_end) - phases.measure_start) / 1e9;
  result.user_s = seconds(after.ru_utime) - seconds(before.ru_utime);
  result.sys_s = seconds(after.ru_stime) - seconds(before.ru_stime);
  result.cpu_wall_s = static_cast<double>(cpu_to - cpu_from) / 1e9;
  return result;
}

}  // namespace bench
