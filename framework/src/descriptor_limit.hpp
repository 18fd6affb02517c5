// The master's open-files limit: raised at start from the soft limit to the
// hard one, as nginx's worker_rlimit_nofile and most servers do, since
// every connection is a descriptor and the soft default (1024) is a
// shell's, not a server's. The workers inherit it (fork, or the spawn).
#pragma once

#include <sys/resource.h>

namespace prefork {

// Raises RLIMIT_NOFILE's soft limit to its hard limit, logging the change
// (or the failing call); returns the soft limit in force afterwards.
rlim_t raise_descriptor_limit() noexcept;

}  // namespace prefork
