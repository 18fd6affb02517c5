// One line per event, on stderr or the --log-file:
//   2026-11-29T11:45:00.123Z info prefork[1234] master: starting 4 workers
//   2026-11-29T11:45:00.125Z error prefork[1240] worker 3 gen 2: accept4 failed: ...
// or, with LogFormat::json, one object per line:
//   {"time":"2026-11-29T11:45:00.125Z","level":"error","pid":1240,"role":"worker",
//    "slot":3,"generation":2,"message":"accept4 failed: ..."}
// (slot and generation only in a worker's lines).
//
// Safe to call from the master, the workers and their threads: each line is
// formatted whole on the stack and leaves in one write(2), so lines from
// several processes sharing the file never interleave. Not async-signal-safe:
// never call any of this from a signal handler.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace prefork {

enum class LogLevel { debug, info, warning, error };
enum class LogFormat { text, json };

// What --log-level, --log-format and --log-file choose.
struct LogSettings {
  LogLevel level = LogLevel::info;  // lines below it are dropped
  LogFormat format = LogFormat::text;
  std::string file{};  // opened with O_APPEND (created 0640); empty: stderr

  bool operator==(const LogSettings&) const = default;
};

// "debug", "info", "warning", "error"; "text", "json"; and back (nullopt for
// any other word).
std::string_view log_level_name(LogLevel level) noexcept;
std::optional<LogLevel> log_level_from_name(std::string_view name) noexcept;
std::string_view log_format_name(LogFormat format) noexcept;
std::optional<LogFormat> log_format_from_name(std::string_view name) noexcept;

// For callers, once per process before the lines that should follow the
// settings (serve() does for the master, serve_as_worker() for a spawned
// worker; a forked worker inherits them). Opens the file first and keeps
// the previous settings when that fails: throws SystemError naming open and
// the path.
void configure_log(const LogSettings& settings);
const LogSettings& log_settings() noexcept;

// After logrotate moved the file away (SIGUSR1): opens the same path again,
// as the same descriptor number (so another thread's write in between goes
// to the old file or the new one, never to a closed descriptor), and logs
// one line saying so in the new file. Call it from the loop, never from a
// signal handler. On stderr there is nothing to reopen: true. False, with a
// line in the old file naming the error, when the path cannot be opened.
bool reopen_log();

// The role in every line; set once per process. set_log_role: "master" (the
// default) or a name of the program's own; `role` must outlive the process's
// logging (a literal or a static string). set_log_worker: "worker <slot> gen
// <generation>" (json: role "worker" with "slot" and "generation").
void set_log_role(const char* role);
void set_log_worker(unsigned slot, std::uint64_t generation);

// True when a line of `level` would be written (to skip costly arguments).
bool log_enabled(LogLevel level) noexcept;

// printf-style; one line each (a newline in the message is written as \n).
void log_debug(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char* format, ...) __attribute__((format(printf, 1, 2)));

// Level error: "<call> failed: <errno text>" followed by the optional
// context in parentheses.
void log_sys_error(const char* call, int error, const char* context_format = nullptr, ...)
    __attribute__((format(printf, 3, 4)));

}  // namespace prefork
