// Exit statuses, the same for the master, prefork_main and worker programs.
#pragma once

namespace prefork {

inline constexpr int exit_ok = 0;
inline constexpr int exit_setup_failed = 1;    // e.g. bind failed
inline constexpr int exit_usage = 2;           // bad command line or configuration
inline constexpr int exit_workers_failed = 3;  // workers keep dying at start
// A worker exiting with this status means "my set-up failed; do not
// respawn me" (gunicorn's boot error): the master stops and exits 3.
inline constexpr int worker_exit_boot_error = 3;

}  // namespace prefork
