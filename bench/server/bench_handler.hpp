// The benchmark handler: the request of Stevens' UNP ch. 30 client ("N bytes
// please": the payload starts with a decimal N and a newline, and is answered
// with N bytes), or, without that, the payload echoed back. Two knobs shape
// the work, so that a user sees with numbers what the lesson says in words:
//   io_wait_us: the request waits that long (sleep: a database, a disk), the
//     CPU free for others: concurrency helps even on one core;
//   cpu_us: the request computes that long (a busy loop on the thread's CPU
//     clock): only parallelism (more cores) helps.
#pragma once

#include <prefork/handler.hpp>

#include <time.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <thread>

class BenchHandler final : public prefork::Handler {
 public:
  unsigned io_wait_us = 0;
  unsigned cpu_us = 0;

  void handle(const prefork::Request&, std::string_view data, prefork::Reply& reply) override {
    if (cpu_us > 0) compute(cpu_us);
    if (io_wait_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(io_wait_us));
    std::size_t wanted = 0;
    auto newline = data.find('\n');
    auto [end, error] =
        std::from_chars(data.data(), data.data() + std::min(newline, data.size()), wanted);
    if (newline != std::string_view::npos && error == std::errc() && end == data.data() + newline &&
        wanted <= max_reply) {
      auto out = reply.allocate(wanted);
      std::memset(out.data(), 'x', out.size());
    } else {
      reply.send(data);
    }
  }

  static constexpr std::size_t max_reply = 16 << 20;

 private:
  // Burns `us` of this thread's CPU time (not wall time: preemption by
  // another process does not shorten the work).
  static void compute(unsigned us) {
    timespec start{}, now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
    const long long budget = static_cast<long long>(us) * 1000;
    volatile unsigned sink = 0;
    do {
      for (int i = 0; i < 256; ++i) sink = sink * 31 + static_cast<unsigned>(i);
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    } while ((now.tv_sec - start.tv_sec) * 1'000'000'000LL + (now.tv_nsec - start.tv_nsec) <
             budget);
  }
};
