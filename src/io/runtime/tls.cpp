#include "io/runtime/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <vector>

#include "base/network.hpp"

namespace smtplb::io {
namespace {

int openssl_version(config::TlsVersion v) {
    return v == config::TlsVersion::Tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

std::string openssl_error(const std::string& what) {
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return what;
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return what + ": " + text;
}

}  // namespace

TlsContext make_server_tls(const config::ServerTls& tls, std::string& error) {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    auto* native = context->native_handle();
    SSL_CTX_set_min_proto_version(native, openssl_version(tls.min_version));
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(native, tls.cert.c_str()) != 1) {
        error = openssl_error("cannot load the certificate chain \"" + tls.cert + "\"");
        return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(native, tls.key.c_str(), SSL_FILETYPE_PEM) != 1) {
        error = openssl_error("cannot load the private key \"" + tls.key + "\"");
        return nullptr;
    }
    if (SSL_CTX_check_private_key(native) != 1) {
        error = openssl_error("the key \"" + tls.key + "\" does not match the certificate \"" +
                              tls.cert + "\"");
        return nullptr;
    }
    if (!tls.ciphers.empty() && SSL_CTX_set_cipher_list(native, tls.ciphers.c_str()) != 1) {
        error = openssl_error("no usable cipher in \"" + tls.ciphers + "\"");
        return nullptr;
    }
    if (tls.ask_client_cert) {
        // Asked for, never required or verified: it is recorded, not trusted.
        SSL_CTX_set_verify(native, SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
        static const unsigned char id[] = "smtplb";
        SSL_CTX_set_session_id_context(native, id, sizeof id - 1);
    }
    return context;
}

TlsContext make_backend_tls(const config::BackendTls& tls, std::string& error) {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
    auto* native = context->native_handle();
    SSL_CTX_set_min_proto_version(native, openssl_version(tls.min_version));
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION);
    if (tls.verifies()) {
        int loaded = tls.ca_file.empty()
                         ? SSL_CTX_set_default_verify_paths(native)
                         : SSL_CTX_load_verify_locations(native, tls.ca_file.c_str(), nullptr);
        if (loaded != 1) {
            error = openssl_error("cannot load the CA file \"" + tls.ca_file + "\"");
            return nullptr;
        }
    }
    if (!tls.cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(native, tls.cert.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(native, tls.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(native) != 1) {
            error = openssl_error("cannot use the client certificate \"" + tls.cert +
                                  "\" with key \"" + tls.key + "\"");
            return nullptr;
        }
    }
    return context;
}

bool BackendTlsContexts::build(const config::Config& config, std::string& error) {
    contexts_.clear();
    for (const auto& pool : config.pools) {
        if (pool.tls.mode == config::BackendTlsMode::None) continue;
        auto context = make_backend_tls(pool.tls, error);
        if (!context) {
            error.insert(0, "pool " + pool.name + ": tls: ");
            return false;
        }
        contexts_[pool.name] = std::move(context);
    }
    return true;
}

namespace {
// What a partial write left of `buffers`: rare, so a copied list is fine.
template <typename Buffers>
std::vector<asio::const_buffer> remainder(const Buffers& buffers, std::size_t skip) {
    std::vector<asio::const_buffer> rest;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
        asio::const_buffer buffer(*it);
        if (skip >= buffer.size()) {
            skip -= buffer.size();
            continue;
        }
        rest.push_back(buffer + skip);
        skip = 0;
    }
    return rest;
}
// What a non-blocking call did: "would block" is no error, just nothing done.
std::size_t done_now(std::size_t bytes, error_code& ec) {
    if (ec == asio::error::would_block || ec == asio::error::try_again)
        ec.clear();
    else if (!ec)
        return bytes;
    return 0;
}

}  // namespace

template <typename Buffers>
std::size_t TlsCapableStream::write_now(const Buffers& buffers, error_code& ec) {
    ec.clear();
    // A blocking socket would stall the whole event loop.
    if (stream_ || !socket_.non_blocking()) return 0;
    std::size_t written = socket_.write_some(buffers, ec);
    return done_now(written, ec);
}

std::size_t TlsCapableStream::read_now(asio::mutable_buffer buffer, error_code& ec) {
    ec.clear();
    if (stream_ || !socket_.non_blocking()) return 0;
    std::size_t got = socket_.read_some(buffer, ec);
    return done_now(got, ec);
}

template <typename Buffers>
awaitable<std::tuple<error_code, std::size_t>> TlsCapableStream::write_rest(const Buffers& buffers,
                                                                            std::size_t skip) {
    if (stream_) co_return co_await asio::async_write(*stream_, buffers, use_nothrow);
    ++writes_started_;
    std::tuple<error_code, std::size_t> result;
    if (skip == 0) {
        result = co_await asio::async_write(socket_, buffers, use_nothrow);
    } else {
        auto rest = remainder(buffers, skip);
        auto [ec, n] = co_await asio::async_write(socket_, rest, use_nothrow);
        result = std::tuple{ec, skip + n};
    }
    ++writes_finished_;
    co_return result;
}

template <typename Buffers>
awaitable<std::tuple<error_code, std::size_t>> TlsCapableStream::write(const Buffers& buffers) {
    error_code ec;
    std::size_t written = write_now(buffers, ec);
    if (ec || written == asio::buffer_size(buffers)) co_return std::tuple{ec, written};
    co_return co_await write_rest(buffers, written);
}

#define SMTPLB_TLS_WRITES(Buffers)                                                        \
    template awaitable<std::tuple<error_code, std::size_t>> TlsCapableStream::write(      \
        const Buffers&);                                                                  \
    template std::size_t TlsCapableStream::write_now(const Buffers&, error_code&);        \
    template awaitable<std::tuple<error_code, std::size_t>> TlsCapableStream::write_rest( \
        const Buffers&, std::size_t);
SMTPLB_TLS_WRITES(asio::mutable_buffer)
SMTPLB_TLS_WRITES(asio::const_buffer)
SMTPLB_TLS_WRITES(std::span<const asio::const_buffer>)
#undef SMTPLB_TLS_WRITES

awaitable<error_code> TlsCapableStream::accept(TlsContext context) {
    context_ = std::move(context);
    stream_ = std::make_unique<ssl::stream<tcp::socket&>>(socket_, *context_);
    auto [ec] = co_await stream_->async_handshake(ssl::stream_base::server, use_nothrow);
    co_return ec;
}

awaitable<error_code> TlsCapableStream::connect(TlsContext context, const std::string& name,
                                                bool verify) {
    context_ = std::move(context);
    stream_ = std::make_unique<ssl::stream<tcp::socket&>>(socket_, *context_);
    auto* ssl = stream_->native_handle();
    bool numeric = base::IpAddress::parse(name).has_value();
    // SNI carries names only (RFC 6066 §3).
    if (!numeric && !name.empty()) SSL_set_tlsext_host_name(ssl, name.c_str());
    if (verify) {
        auto* param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (numeric)
            X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
        else
            X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
        SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    }
    auto [ec] = co_await stream_->async_handshake(ssl::stream_base::client, use_nothrow);
    co_return ec;
}

std::string TlsCapableStream::describe(const error_code& ec) const {
    if (stream_) {
        long verify = SSL_get_verify_result(stream_->native_handle());
        if (verify != X509_V_OK)
            return std::string("certificate verification failed: ") +
                   X509_verify_cert_error_string(verify);
    }
    return ec.message();
}

std::string TlsCapableStream::summary() const {
    if (!stream_) return {};
    auto* ssl = stream_->native_handle();
    const char* cipher = SSL_get_cipher_name(ssl);
    return std::string(SSL_get_version(ssl)) + " " + (cipher ? cipher : "");
}

TlsFacts TlsCapableStream::facts() const {
    TlsFacts facts;
    if (!stream_) return facts;
    auto* ssl = stream_->native_handle();
    facts.version = SSL_get_version(ssl);
    if (const char* cipher = SSL_get_cipher_name(ssl)) facts.cipher = cipher;
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
        if (BIO* bio = BIO_new(BIO_s_mem())) {
            X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
            char* data = nullptr;
            long n = BIO_get_mem_data(bio, &data);
            if (n > 0) facts.peer_subject.assign(data, static_cast<std::size_t>(n));
            BIO_free(bio);
        }
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        if (X509_digest(peer, EVP_sha256(), digest, &length) == 1) {
            static const char hex[] = "0123456789abcdef";
            for (unsigned i = 0; i < length; ++i) {
                facts.peer_fingerprint += hex[digest[i] >> 4];
                facts.peer_fingerprint += hex[digest[i] & 15];
            }
        }
        int days = 0, seconds = 0;
        if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(peer)) == 1)
            facts.peer_seconds_left = static_cast<long long>(days) * 86400 + seconds;
        X509_free(peer);
    }
    return facts;
}

std::optional<long long> certificate_seconds_left(const TlsContext& context) {
    if (!context) return std::nullopt;
    X509* leaf = SSL_CTX_get0_certificate(context->native_handle());
    int days = 0, seconds = 0;
    if (!leaf || ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(leaf)) != 1)
        return std::nullopt;
    return static_cast<long long>(days) * 86400 + seconds;
}

}  // namespace smtplb::io
