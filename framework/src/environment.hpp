// The environment a spawn-mode master hands to its workers. The LISTEN_*
// names follow systemd's socket activation (sd_listen_fds(3)), so a worker
// program can equally be started by systemd.
#pragma once

namespace prefork::env {

inline constexpr int listen_fds_start = 3;
inline constexpr const char* listen_fds = "LISTEN_FDS";
inline constexpr const char* listen_pid = "LISTEN_PID";
inline constexpr const char* listen_fdnames = "LISTEN_FDNAMES";

inline constexpr const char* stats = "PREFORK_STATS";
inline constexpr const char* slot = "PREFORK_SLOT";
inline constexpr const char* generation = "PREFORK_GENERATION";
inline constexpr const char* max_frame = "PREFORK_MAX_FRAME";
inline constexpr const char* master_pid = "PREFORK_MASTER_PID";
inline constexpr const char* graceful_timeout_ms = "PREFORK_GRACEFUL_TIMEOUT_MS";
inline constexpr const char* model = "PREFORK_MODEL";
inline constexpr const char* accept = "PREFORK_ACCEPT";
inline constexpr const char* threads = "PREFORK_THREADS";
inline constexpr const char* worker_stats = "PREFORK_WORKER_STATS";  // "0": counting off

// The LISTEN_FDNAMES name of the --accept pass channel to the master.
inline constexpr const char* channel_name = "channel";

}  // namespace prefork::env
