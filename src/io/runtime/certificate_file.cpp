#include "io/runtime/certificate_file.hpp"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>

namespace smtplb::io {

std::optional<std::int64_t> certificate_seconds_left(const std::string& path, std::string& error) {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "r"), &std::fclose);
    if (!file) {
        error = "cannot read \"" + path + "\"";
        return std::nullopt;
    }
    std::unique_ptr<X509, void (*)(X509*)> cert(
        PEM_read_X509(file.get(), nullptr, nullptr, nullptr), &X509_free);
    if (!cert) {
        error = "no PEM certificate in \"" + path + "\"";
        return std::nullopt;
    }
    int days = 0, seconds = 0;
    // From now (a null "from") to notAfter.
    if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())) != 1) {
        error = "the expiry date of \"" + path + "\" cannot be read";
        return std::nullopt;
    }
    return std::int64_t(days) * 86400 + seconds;
}

}  // namespace smtplb::io
