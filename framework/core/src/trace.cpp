#include <prefork/core/trace.hpp>
#include <prefork/log.hpp>
#include <prefork/scoreboard.hpp>

#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>

namespace prefork {

namespace {

std::atomic<bool> enabled{false};
std::atomic<std::uint64_t> origin{0};

}  // namespace

void set_trace_origin(std::uint64_t origin_ns) noexcept {
  origin.store(origin_ns, std::memory_order_relaxed);
}

void enable_trace(bool on) noexcept { enabled.store(on, std::memory_order_release); }

void configure_trace(std::optional<std::uint64_t> origin_ns) noexcept {
  if (origin_ns) set_trace_origin(*origin_ns);
  enable_trace(origin_ns.has_value());
}

std::optional<std::uint64_t> trace_origin() noexcept {
  if (!trace_enabled()) return std::nullopt;
  return origin.load(std::memory_order_relaxed);
}

bool trace_enabled() noexcept { return enabled.load(std::memory_order_acquire); }

std::string trace_time_text(std::int64_t elapsed_ns) {
  const bool negative = elapsed_ns < 0;
  const std::uint64_t us = (negative ? 0 - static_cast<std::uint64_t>(elapsed_ns)
                                     : static_cast<std::uint64_t>(elapsed_ns)) /
                           1000;
  char text[48];
  std::snprintf(text, sizeof text, "%c%llu.%03llums", negative ? '-' : '+',
                static_cast<unsigned long long>(us / 1000),
                static_cast<unsigned long long>(us % 1000));
  return text;
}

std::string signal_name(int number) {
  std::string text;
  if (const char* name = ::sigabbrev_np(number)) {
    text += "SIG";
    text += name;
  } else {
    text += "signal ";
    text += std::to_string(number);
  }
  return text;
}

std::string wait_status_text(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int number = WTERMSIG(status);
    std::string text = "killed by signal ";
    text += std::to_string(number);
    text += " (";
    text += signal_name(number);
    text += ')';
    if (WCOREDUMP(status)) text += ", core dumped";
    return text;
  }
  return "changed state " + std::to_string(status);
}

void trace(const char* format, ...) {
  if (!trace_enabled()) return;
  const std::string time = trace_time_text(
      static_cast<std::int64_t>(monotonic_ns() - origin.load(std::memory_order_relaxed)));
  char event[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(event, sizeof event, format, args);
  va_end(args);
  log_info("trace %s %s", time.c_str(), event);
}

}  // namespace prefork
