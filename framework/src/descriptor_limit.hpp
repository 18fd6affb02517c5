// The master's open-files limit: raised at start from the soft limit to the
// hard one, as nginx's worker_rlimit_nofile and most servers do, since
// every connection is a descriptor and the soft default (1024) is a
// shell's, not a server's. The workers inherit it (fork, or the spawn).
#pragma once

#include <sys/resource.h>

#include <cstdint>
#include <string>

namespace prefork {

// What one worker process may hold besides its connections: its epoll or
// poll set, the signal and stop pipes, the log file, the scoreboard, the
// pass channel, stdio, a library's few. Generous: being short only warns.
inline constexpr std::uint64_t worker_descriptor_margin = 32;

// The descriptors one worker process needs at its --max-connections cap:
// the cap, the listening sockets it holds, and the margin. The open-files
// limit is per process, so this (not cap x workers) is what must fit in
// RLIMIT_NOFILE; the total cap x workers only counts against the system's
// fs.file-max, which is rarely the tighter one.
std::uint64_t worker_descriptors_needed(std::uint64_t cap, std::uint64_t listeners) noexcept;

// The warning the master logs when a worker at its cap would not fit in
// `limit` (RLIMIT_NOFILE, after raising it), or empty when it fits.
std::string descriptor_shortfall(rlim_t limit, std::uint64_t cap, std::uint64_t listeners,
                                 unsigned workers);

// Raises RLIMIT_NOFILE's soft limit to its hard limit, logging the change
// (or the failing call); returns the soft limit in force afterwards.
rlim_t raise_descriptor_limit() noexcept;

}  // namespace prefork
