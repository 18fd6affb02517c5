// The systemd socket-activation names (sd_listen_fds(3)) by which listening
// descriptors cross an exec, so that a worker program can equally be started
// by systemd. The rest of a spawned worker's environment is WorkerParams'.
#pragma once

namespace prefork::env {

inline constexpr int listen_fds_start = 3;
inline constexpr const char* listen_fds = "LISTEN_FDS";
inline constexpr const char* listen_pid = "LISTEN_PID";
inline constexpr const char* listen_fdnames = "LISTEN_FDNAMES";

// The LISTEN_FDNAMES name of the --accept pass channel to the master.
inline constexpr const char* channel_name = "channel";

}  // namespace prefork::env
