#include "privileges.hpp"

#include <stdexcept>

namespace prefork {

WorkerIdentity worker_identity(const ServerConfig& config, uid_t master_euid) {
  WorkerIdentity identity;
  const bool switching = !config.user.empty() || !config.group.empty();
  if (switching && master_euid != 0) {
    identity.error = "--user/--group need the master to run as root (it runs as uid " +
                     std::to_string(master_euid) + ")";
    return identity;
  }
  if (switching) {
    try {
      identity.run_as = Credentials::lookup(config.user, config.group);
    } catch (const std::exception& e) {
      identity.error = e.what();
      return identity;
    }
  }
  const uid_t workers_uid = identity.run_as ? identity.run_as->uid : master_euid;
  if (workers_uid == 0 && !config.allow_root) {
    identity.run_as.reset();
    identity.error =
        "refusing to run workers as root: give --user NAME (e.g. --user nobody), or --allow-root";
  }
  return identity;
}

}  // namespace prefork
