// --trace: one log line per lifecycle event of the master and its workers,
// so that a student can read the sequence (fork or spawn, set-up, ready,
// exit, reap, restart, stop) across processes:
//
//   ... info prefork[4200] master: trace +3.117ms fork: slot 0 gen 1 -> pid 4242
//   ... info prefork[4242] worker 0 gen 1: trace +3.402ms started: pid 4242, ppid 4200, forked
//
// The time is milliseconds since the master started, on CLOCK_MONOTONIC:
// one clock for every process of the server, so the lines of different
// processes sort by it (the wall clock of the log prefix may step). A
// forked worker inherits the master's time 0; a spawned one gets it in its
// WorkerParams. Events are lifecycle only, never per request (a
// fork-per-connection child is one per connection that forks anyway); with
// --trace off each call is one atomic load and a return. The lines are
// level info: --log-level warning hides them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace prefork {

// Time 0: the master's start, by monotonic_ns() of prefork/scoreboard.hpp.
// Kept while tracing is off, so that a reload turning it on keeps it.
void set_trace_origin(std::uint64_t origin_ns) noexcept;
// On or off (the master at its start and on a reload).
void enable_trace(bool on) noexcept;
// Both, as a worker gets them from its WorkerParams: on from `origin_ns`,
// or off (nullopt). Set before the process's threads trace.
void configure_trace(std::optional<std::uint64_t> origin_ns) noexcept;
// Time 0 when on; nullopt when off.
std::optional<std::uint64_t> trace_origin() noexcept;
bool trace_enabled() noexcept;

// One line: "trace +<ms>ms " and the event, printf-style. Nothing when off.
void trace(const char* format, ...) __attribute__((format(printf, 1, 2)));

// "+12.345ms": `elapsed_ns` in milliseconds with three decimals
// ("-0.002ms" before time 0, which one clock never shows).
std::string trace_time_text(std::int64_t elapsed_ns);

// "SIGTERM"; "signal 40" for a number without a name.
std::string signal_name(int number);

// A waitpid() status as the trace shows it: "exited with status 3",
// "killed by signal 9 (SIGKILL)", "killed by signal 11 (SIGSEGV), core dumped".
std::string wait_status_text(int status);

}  // namespace prefork
