// Whom the workers run as (--user, --group, --allow-root). The master binds
// as whoever started it and keeps that identity, as nginx's master does: a
// reload or a binary upgrade may have to bind a privileged port again. The
// workers, which run the handler's code, drop to the given user once set up
// (Credentials, drop_privileges: framework/core).
#pragma once

#include <prefork/core/credentials.hpp>
#include <prefork/server.hpp>

#include <sys/types.h>

#include <optional>
#include <string>

namespace prefork {

struct WorkerIdentity {
  std::optional<Credentials> run_as;  // none: the workers keep the master's identity
  std::string error;                  // non-empty: refuse to start (exit 2), in one line
};

// Looks --user/--group up. Refuses --user/--group in a master that is not
// root (it could not switch), and workers that would run as root (a root
// master without --user, or --user root) unless config.allow_root.
WorkerIdentity worker_identity(const ServerConfig& config, uid_t master_euid);

}  // namespace prefork
