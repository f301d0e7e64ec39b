#include "check_environment.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "io/runtime/certificate_file.hpp"
#include "io/runtime/tls.hpp"

namespace smtplb::app {
namespace {

// Warn this long before a certificate stops being valid.
constexpr std::int64_t kExpiryWarningSeconds = std::int64_t{14} * 86400;

// Whom the directories are checked for.
struct Account {
    std::string name;
    uid_t uid = 0;
    std::vector<gid_t> groups;  // primary first
};

std::optional<Account> account_named(const std::string& name, std::string& error) {
    const passwd* pw = ::getpwnam(name.c_str());
    if (!pw) {
        error = "no user named \"" + name + "\"";
        return std::nullopt;
    }
    Account a{name, pw->pw_uid, {}};
    int count = 64;
    a.groups.resize(static_cast<std::size_t>(count));
    if (::getgrouplist(name.c_str(), pw->pw_gid, a.groups.data(), &count) < 0) {
        a.groups.resize(static_cast<std::size_t>(count));
        ::getgrouplist(name.c_str(), pw->pw_gid, a.groups.data(), &count);
    }
    a.groups.resize(static_cast<std::size_t>(std::max(count, 0)));
    return a;
}

// The permission bits `account` gets on a file (rwx as 4/2/1); root gets all.
unsigned permitted(const struct stat& st, const Account& a) {
    if (a.uid == 0) return 7;
    if (st.st_uid == a.uid) return (st.st_mode >> 6) & 7;
    if (std::find(a.groups.begin(), a.groups.end(), st.st_gid) != a.groups.end())
        return (st.st_mode >> 3) & 7;
    return st.st_mode & 7;
}

std::string parent_of(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

// Why `dir` cannot take new files, or "" when it can. As `account` from
// the permission bits (every directory on the way must be searchable);
// as this process with access(2), which also sees read-only mounts.
std::string unwritable_dir(const std::string& dir, const std::optional<Account>& account) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
        return errno == ENOENT ? "\"" + dir + "\" does not exist"
                               : "\"" + dir + "\": " + std::strerror(errno);
    if (!S_ISDIR(st.st_mode)) return "\"" + dir + "\" is not a directory";
    if (::access(dir.c_str(), W_OK | X_OK) != 0 && (!account || errno == EROFS))
        return "\"" + dir + "\" is not writable: " + std::strerror(errno);
    if (!account) return "";
    if ((permitted(st, *account) & 3) != 3)
        return "\"" + dir + "\" is not writable by user " + account->name;
    for (std::string up = dir; up != "/" && up != ".";) {
        up = parent_of(up);
        struct stat ust {};
        if (::stat(up.c_str(), &ust) == 0 && !(permitted(ust, *account) & 1)) {
            std::string why = "user " + account->name;
            why += " cannot reach \"" + dir + "\": \"";
            why += up + "\" is not searchable by it";
            return why;
        }
    }
    return "";
}

void check_state_dir(const config::Config& c, const config::KeyLines& lines,
                     const std::optional<Account>& account, config::Diagnostics& d) {
    const auto& dir = c.server.state_dir;
    auto line = lines.line("server.state_dir");
    if (auto why = unwritable_dir(dir, account); !why.empty()) {
        d.error("server.state_dir", line, why + " (the spool and large messages go there)");
        return;
    }
    // A spool left by an earlier run (perhaps as root) must be usable too.
    struct stat st {};
    const auto spool = dir + "/spool";
    if (::stat(spool.c_str(), &st) == 0)
        if (auto why = unwritable_dir(spool, account); !why.empty())
            d.error("server.state_dir", line, "the spool " + why);
    if (account) return;  // O_TMPFILE below is made as this process
    // As `run` checks it: large messages are buffered in unnamed files there.
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        d.error("server.state_dir", line,
                "\"" + dir + "\" cannot hold temporary files: " + std::strerror(errno));
    else
        ::close(fd);
}

void check_tracking_log(const config::Config& c, const config::KeyLines& lines,
                        const std::optional<Account>& account, config::Diagnostics& d) {
    const auto& path = c.server.tracking_log;
    if (path.empty() || path == "-") return;
    auto line = lines.line("server.tracking_log");
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            d.error("server.tracking_log", line, "\"" + path + "\" is a directory");
            return;
        }
        bool writable =
            account ? (permitted(st, *account) & 2) != 0 : ::access(path.c_str(), W_OK) == 0;
        if (!writable)
            d.error("server.tracking_log", line,
                    "\"" + path + "\" is not writable" +
                        (account ? " by user " + account->name : std::string()));
    }
    // The directory too: a rotated log is reopened as a new file there.
    if (auto why = unwritable_dir(parent_of(path), account); !why.empty())
        d.error("server.tracking_log", line, "the log's directory " + why);
}

void check_expiry(const std::string& path, const std::string& key, const config::KeyLines& lines,
                  config::Diagnostics& d) {
    std::string error;
    auto left = io::certificate_seconds_left(path, error);
    if (!left) return;  // loading it reported the problem
    if (*left < kExpiryWarningSeconds) {
        auto days = *left / 86400;
        d.warning(key, lines.line(key),
                  "the certificate in \"" + path + "\" " +
                      (*left <= 0 ? std::string("has expired")
                                  : "expires in " + std::to_string(days) +
                                        (days == 1 ? " day" : " days")) +
                      " (warned under 14 days)");
    }
}

void check_certificates(const config::Config& c, const config::KeyLines& lines,
                        config::Diagnostics& d) {
    for (std::size_t i = 0; i < c.listeners.size(); ++i) {
        const auto& l = c.listeners[i];
        if (!l.tls.enabled()) continue;
        const auto at = "listener[" + std::to_string(i) + "].tls";
        std::string error;
        // The same loading as at start: chain, key, their match, ciphers.
        if (!io::make_server_tls(l.tls, error))
            d.error(at + ".cert", lines.line(at + ".cert"), error);
        else
            check_expiry(l.tls.cert, at + ".cert", lines, d);
    }
    if (const auto& admin = c.server.admin_tls; admin.enabled()) {
        std::string error;
        if (!io::make_server_tls(admin, error))
            d.error("server.admin_tls", c.server.admin_tls_line, error);
        else
            check_expiry(admin.cert, "server.admin_tls", lines, d);
    }
    for (std::size_t i = 0; i < c.pools.size(); ++i) {
        const auto& p = c.pools[i];
        if (p.tls.mode == config::BackendTlsMode::None) continue;
        const auto at = "pool[" + std::to_string(i) + "].tls";
        std::string error;
        if (!io::make_backend_tls(p.tls, error))
            d.error(at, lines.line(at), error);
        else if (!p.tls.cert.empty())
            check_expiry(p.tls.cert, at + ".cert", lines, d);
    }
}

// A token any local user can read lets any local user drain backends and
// delete spooled mail.
void check_token_files(const config::Config& c, const config::KeyLines& lines,
                       config::Diagnostics& d) {
    for (const auto& [key, path] :
         {std::pair<const char*, const std::string&>{"server.admin_token_file",
                                                     c.server.admin_token_file},
          {"server.admin_readonly_token_file", c.server.admin_readonly_token_file}}) {
        struct stat st {};
        if (path.empty() || ::stat(path.c_str(), &st) != 0) continue;  // the loader said so
        if ((st.st_mode & 0004) != 0)
            d.warning(key, lines.line(key),
                      "\"" + path + "\" is readable by every local user (mode " +
                          std::to_string((st.st_mode >> 6) & 7) +
                          std::to_string((st.st_mode >> 3) & 7) + std::to_string(st.st_mode & 7) +
                          "); chmod o-r it (0600, or 0640 with group smtplb)");
    }
}

// smtplb's password on a smarthost: anyone who reads it can send as smtplb.
void check_password_files(const config::Config& c, const config::KeyLines& lines,
                          config::Diagnostics& d) {
    for (std::size_t i = 0; i < c.pools.size(); ++i)
        for (std::size_t j = 0; j < c.pools[i].backends.size(); ++j) {
            const auto& auth = c.pools[i].backends[j].auth;
            struct stat st {};
            if (!auth || ::stat(auth->password_file.c_str(), &st) != 0) continue;
            if ((st.st_mode & 0004) == 0) continue;
            const auto key = "pool[" + std::to_string(i) + "].backend[" + std::to_string(j) +
                             "].auth.password_file";
            d.warning(key, lines.line(key),
                      "\"" + auth->password_file + "\" is readable by every local user; chmod " +
                          "o-r it (0600, or 0640 with group smtplb)");
        }
}

}  // namespace

void check_environment(const config::Config& config, const config::KeyLines& lines,
                       const std::string& user, config::Diagnostics& diags) {
    std::optional<Account> account;
    if (!user.empty()) {
        std::string error;
        account = account_named(user, error);
        if (!account) {
            diags.error("", 0, "--user: " + error);
            return;
        }
    }
    check_state_dir(config, lines, account, diags);
    check_tracking_log(config, lines, account, diags);
    check_certificates(config, lines, diags);
    check_token_files(config, lines, diags);
    check_password_files(config, lines, diags);
}

std::optional<FileLimitLow> raise_file_limit(const config::Config& config) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nullopt;
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    std::uint64_t wanted = 64;  // listeners, admin, logs, spool
    for (const auto& l : config.listeners)
        wanted += std::uint64_t(l.max_connections) * (l.mode == config::ListenerMode::Tcp ? 2 : 1);
    if (limit.rlim_cur == RLIM_INFINITY || wanted <= limit.rlim_cur) return std::nullopt;
    return FileLimitLow{limit.rlim_cur, wanted};
}

}  // namespace smtplb::app
