#include "proto/dovecot_auth.hpp"

#include <vector>

#include "base/base64.hpp"

namespace smtplb::proto {
namespace {

std::vector<std::string_view> split_tabs(std::string_view text) {
    std::vector<std::string_view> out;
    for (std::size_t start = 0;;) {
        auto tab = text.find('\t', start);
        out.push_back(text.substr(start, tab == std::string_view::npos ? tab : tab - start));
        if (tab == std::string_view::npos) return out;
        start = tab + 1;
    }
}

}  // namespace

std::string DovecotAuthClient::handshake(std::uint32_t pid) {
    return "VERSION\t1\t1\nCPID\t" + std::to_string(pid) + "\n";
}

std::string DovecotAuthClient::request(std::string_view login, std::string_view password,
                                       const ClientIdentity& client, bool secured) {
    std::string credentials;
    credentials.reserve(login.size() + password.size() + 2);
    credentials += '\0';
    credentials += login;
    credentials += '\0';
    credentials += password;
    std::string out = "AUTH\t" + std::to_string(id_) + "\tPLAIN\tservice=smtp\tnologin";
    if (secured) out += "\tsecured";
    out += "\trip=" + client.address.to_string() + "\tlip=" + client.local_address.to_string();
    out +=
        "\trport=" + std::to_string(client.port) + "\tlport=" + std::to_string(client.local_port);
    out += "\tresp=" + base::base64_encode(credentials) + "\n";
    std::fill(credentials.begin(), credentials.end(), '\0');
    state_ = State::Waiting;
    return out;
}

void DovecotAuthClient::fail(std::string why) {
    state_ = State::Error;
    error_ = std::move(why);
    buffer_.clear();
}

void DovecotAuthClient::feed(std::string_view bytes) {
    if (state_ == State::Error) return;
    buffer_.append(bytes);
    std::size_t start = 0;
    for (;;) {
        auto lf = buffer_.find('\n', start);
        if (lf == std::string::npos) break;
        line(std::string_view(buffer_).substr(start, lf - start));
        start = lf + 1;
        if (state_ == State::Error) return;
    }
    buffer_.erase(0, start);
    if (buffer_.size() > kMaxLine) fail("line longer than " + std::to_string(kMaxLine) + " bytes");
}

void DovecotAuthClient::line(std::string_view text) {
    auto fields = split_tabs(text);
    auto command = fields[0];
    if (state_ == State::Handshake || state_ == State::Ready) {
        if (command == "VERSION") {
            if (fields.size() < 3 || fields[1] != "1") return fail("unsupported protocol version");
            version_ok_ = true;
        } else if (!version_ok_) {
            return fail("no VERSION first");
        } else if (command == "MECH") {
            if (fields.size() >= 2 && fields[1] == "PLAIN") plain_offered_ = true;
        } else if (command == "DONE") {
            if (!plain_offered_) return fail("the server does not offer PLAIN");
            state_ = State::Ready;
        }
        // SPID, CUID, COOKIE and anything newer: not needed to authenticate.
        return;
    }
    if (state_ != State::Waiting) return;  // a verdict is final
    if (fields.size() < 2 || fields[1] != std::to_string(id_))
        return fail("reply for a request we did not make");
    if (command == "OK") {
        state_ = State::Ok;
    } else if (command == "FAIL") {
        state_ = State::Fail;
        for (std::size_t i = 2; i < fields.size(); ++i)
            if (fields[i] == "temp") state_ = State::TempFail;
    } else if (command == "CONT") {
        fail("the server wants more than PLAIN's one response");
    } else {
        fail("unexpected reply");
    }
}

}  // namespace smtplb::proto
