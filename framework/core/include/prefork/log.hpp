// One-line log records on stderr: "prefork[<pid>] <role>: <message>".
//
// Safe to call from the master and the workers (each line is one write(2), so
// lines from several processes never interleave); not async-signal-safe.
#pragma once

namespace prefork {

// The role printed in every line ("master", "worker 3"); set once per process.
void set_log_role(const char* role);

void log_info(const char* format, ...) __attribute__((format(printf, 1, 2)));

// SIGUSR1 (logrotate's postrotate): reopen the log files. Lines go to
// stderr for now, which the process does not own: this only says so. Call
// it from a loop, never from a signal handler.
void reopen_log();

// "<call> failed: <errno text>" followed by the optional context.
void log_sys_error(const char* call, int error, const char* context_format = nullptr, ...)
    __attribute__((format(printf, 3, 4)));

}  // namespace prefork
