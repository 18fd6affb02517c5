// The systemd socket-activation names (sd_listen_fds(3)) by which listening
// descriptors cross an exec, so that a worker program can equally be started
// by systemd. The rest of a spawned worker's environment is WorkerParams'.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace prefork::env {

inline constexpr int listen_fds_start = 3;
inline constexpr const char* listen_fds = "LISTEN_FDS";
inline constexpr const char* listen_pid = "LISTEN_PID";
inline constexpr const char* listen_fdnames = "LISTEN_FDNAMES";

// The LISTEN_FDNAMES name of the --accept pass channel to the master.
inline constexpr const char* channel_name = "channel";

// The variable `name` as a whole decimal number; nullopt when it is unset.
// Throws std::runtime_error ("NAME='x' is not a number") for anything else.
std::optional<long> number(const char* name);

// LISTEN_FDNAMES split at its ':', in order (an empty name where two colons
// meet); none when it is unset.
std::vector<std::string> listen_fd_names();

}  // namespace prefork::env
