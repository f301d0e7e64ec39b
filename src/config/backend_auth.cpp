#include "config/backend_auth.hpp"

#include <fstream>

namespace smtplb::config {

namespace {
// A byte that cannot be part of a user name or password on an SMTP line
// (PLAIN separates its fields with NUL; LOGIN's lines end at CR LF).
bool has_control(const std::string& text) {
    for (unsigned char c : text)
        if (c < 0x20 || c == 0x7f) return true;
    return false;
}
}  // namespace

std::string read_password_file(const std::string& path, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = "cannot read \"" + path + "\"";
        return {};
    }
    // Read a little past the longest password: enough to tell "too long".
    constexpr std::size_t kReadAtMost = proto::kMaxAuthPassword + 4096;
    std::string text;
    text.resize(kReadAtMost + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > kReadAtMost) {
        error = "\"" + path + "\" is too long for a password file (one line)";
        return {};
    }
    auto end = text.find('\n');
    std::string password = text.substr(0, end);
    if (!password.empty() && password.back() == '\r') password.pop_back();
    if (end != std::string::npos && text.find_first_not_of("\r\n", end) != std::string::npos)
        error = "\"" + path + "\" must hold one line: the password";
    else if (password.empty())
        error = "\"" + path + "\" is empty: its first line is the password";
    else if (password.size() > proto::kMaxAuthPassword)
        error = "the password in \"" + path + "\" is longer than " +
                std::to_string(proto::kMaxAuthPassword) + " bytes";
    else if (has_control(password))
        error = "the password in \"" + path + "\" holds a control character";
    if (!error.empty()) return {};
    return password;
}

void read_backend_auth(TableReader& parent, const Pool& pool, Backend& b) {
    const auto* table = parent.table("auth");
    if (!table) return;
    auto& d = parent.diagnostics();
    TableReader r(*table, parent.key_path("auth"), d);
    if (table->contains("password"))
        // Besides "unknown key"; the value is not echoed (a secret in a file
        // many people read).
        d.error(r.key_path("password"), r.line_of("password"),
                "the password is not written in the configuration: put it in a file only "
                "smtplb can read and name it in password_file");
    BackendAuth auth;
    auto& credentials = auth.credentials;
    r.string("username", credentials.username, true);
    r.string("password_file", auth.password_file, true);
    r.choice("mechanism", credentials.mechanism,
             {{"auto", proto::AuthMechanism::Auto},
              {"plain", proto::AuthMechanism::Plain},
              {"login", proto::AuthMechanism::Login}});
    r.boolean("allow_plaintext", auth.allow_plaintext);
    if (credentials.username.size() > proto::kMaxAuthUsername)
        d.error(r.key_path("username"), r.line_of("username"),
                "at most " + std::to_string(proto::kMaxAuthUsername) + " bytes");
    else if (has_control(credentials.username))
        d.error(r.key_path("username"), r.line_of("username"), "holds a control character");
    if (!auth.password_file.empty()) {
        std::string error;
        credentials.password = read_password_file(auth.password_file, error);
        if (!error.empty()) d.error(r.key_path("password_file"), r.line_of("password_file"), error);
    }
    using Mode = BackendTlsMode;
    const auto at = r.line_of("username");
    if (!auth.allow_plaintext) {
        if (pool.tls.mode == Mode::None)
            d.error(r.path(), at,
                    "AUTH sends smtplb's password to the backend: pool \"" + pool.name +
                        "\" needs tls (mode = \"required\" or \"implicit\"), or "
                        "allow_plaintext = true for a lab on loopback");
        else if (pool.tls.mode == Mode::Opportunistic)
            d.warning(r.path(), at,
                      "with opportunistic TLS the backend's certificate is not verified (a "
                      "machine in between could take the password), and where STARTTLS does "
                      "not happen no AUTH is sent and the backend is misconfigured: prefer "
                      "mode = \"required\"");
    } else if (auto ip = base::IpAddress::parse(b.address.host);
               ip && !ip->is_loopback() && pool.tls.mode == Mode::None) {
        d.warning(r.key_path("allow_plaintext"), r.line_of("allow_plaintext"),
                  "the password goes in plaintext to " + b.address.to_string() +
                      ", which is not a loopback address");
    }
    b.auth = std::move(auth);
}

}  // namespace smtplb::config
