// 8-bit MIME to 7-bit: real-world shaped messages, decoded back and compared.
#include "mime/downgrade.hpp"

#include <gtest/gtest.h>

#include <string>

namespace smtplb::mime {
namespace {

// Quoted-printable decoding (RFC 2045 §6.7), enough to read the result back.
std::string decode_qp(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '=') {
            out += text[i];
        } else if (i + 2 < text.size() && text[i + 1] == '\r' && text[i + 2] == '\n') {
            i += 2;  // soft line break
        } else if (i + 2 < text.size()) {
            out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        }
    }
    return out;
}

// The body of the part whose headers contain `marker`: from the blank line
// after it to the next boundary line ("\r\n--").
std::string part_body(const std::string& message, std::string_view marker) {
    auto at = message.find(marker);
    if (at == std::string::npos) return "<no part>";
    auto start = message.find("\r\n\r\n", at) + 4;
    auto end = message.find("\r\n--", start);
    return message.substr(start, end == std::string::npos ? std::string::npos : end - start + 2);
}

bool all_lines_within(const std::string& text, std::size_t limit) {
    std::size_t line = 0;
    for (std::size_t lf; (lf = text.find('\n', line)) != std::string::npos; line = lf + 1)
        if (lf - line > limit + 1) return false;  // +1: the CR
    return true;
}

const std::string kUtf8Text = "Grüße aus Köln, naïve café = 10€\r\n";
const std::string kLatin1Text =
    "Gr\xfc\xdf"
    "e aus K\xf6ln\r\n";

TEST(Downgrade, Has8bitFindsAnOctetAnywhere) {
    EXPECT_FALSE(has_8bit("plain ascii text, long enough for the word loop"));
    EXPECT_TRUE(has_8bit(std::string(100, 'a') + "\xe9"));
    EXPECT_TRUE(has_8bit("\x80"));
    EXPECT_FALSE(has_8bit(""));
}

TEST(Downgrade, MultipartAlternativeWith8bitTextAndHtml) {
    std::string message =
        "From: Jörg <j@example.net>\r\n"
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/alternative;\r\n boundary=\"=-alt\"\r\n"
        "\r\n"
        "--=-alt\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n" +
        kUtf8Text +
        "--=-alt\r\n"
        "Content-Type: text/html; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "<p>" +
        kLatin1Text + "--=-alt--\r\n";
    auto result = downgrade_to_7bit(message);
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.parts_converted, 2u);
    // Headers as they were, the 8-bit From included (left alone, as Postfix does).
    EXPECT_EQ(result.message.substr(0, 120), message.substr(0, 120));
    auto body = result.message.substr(result.message.find("\r\n\r\n"));
    EXPECT_FALSE(has_8bit(body));
    EXPECT_EQ(decode_qp(part_body(result.message, "text/plain")), kUtf8Text);
    EXPECT_EQ(decode_qp(part_body(result.message, "text/html")), "<p>" + kLatin1Text);
    EXPECT_NE(result.message.find("Content-Transfer-Encoding: quoted-printable"),
              std::string::npos);
    EXPECT_EQ(result.message.find("Content-Transfer-Encoding: 8bit"), std::string::npos);
    EXPECT_EQ(result.message.find("\n\n"), std::string::npos);  // CRLF throughout
}

TEST(Downgrade, NestedMessageRfc822IsConvertedAndRelabelled) {
    std::string message =
        "From: a@example.net\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=OUTER\r\n"
        "\r\n"
        "--OUTER\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "Forwarded below.\r\n"
        "--OUTER\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "From: b@example.org\r\n"
        "Subject: inner\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n" +
        kUtf8Text + "--OUTER--\r\n";
    auto result = downgrade_to_7bit(message);
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.parts_converted, 1u);
    EXPECT_FALSE(has_8bit(result.message));
    EXPECT_NE(result.message.find("Content-Type: message/rfc822\r\n"
                                  "Content-Transfer-Encoding: 7bit\r\n"),
              std::string::npos);
    EXPECT_NE(result.message.find("Content-Type: text/plain; charset=us-ascii\r\n\r\n"
                                  "Forwarded below.\r\n"),
              std::string::npos);
    EXPECT_EQ(decode_qp(part_body(result.message, "Subject: inner")), kUtf8Text);
}

TEST(Downgrade, AlreadyEncodedPartsAreUntouched) {
    std::string qp_part =
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "caf=C3=A9 with a soft=\r\n"
        " break\r\n";
    std::string b64_part =
        "Content-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "AAECAwQF\r\n";
    std::string message =
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        "--B\r\n" +
        qp_part + "--B\r\n" + b64_part +
        "--B\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" +
        kUtf8Text + "--B--\r\n";
    auto result = downgrade_to_7bit(message);
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.parts_converted, 1u);
    EXPECT_NE(result.message.find(qp_part), std::string::npos);
    EXPECT_NE(result.message.find(b64_part), std::string::npos);
}

TEST(Downgrade, MessageWithoutMimeHeadersIsTextPlain) {
    std::string message = "From: a@example.net\r\nSubject: plain\r\n\r\n" + kLatin1Text;
    auto result = downgrade_to_7bit(message);
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.parts_converted, 1u);
    EXPECT_FALSE(has_8bit(result.message));
    EXPECT_NE(result.message.find("MIME-Version: 1.0\r\n"), std::string::npos);
    EXPECT_NE(result.message.find("Content-Transfer-Encoding: quoted-printable\r\n"),
              std::string::npos);
    auto body = result.message.substr(result.message.find("\r\n\r\n") + 4);
    EXPECT_EQ(decode_qp(body), kLatin1Text);
}

TEST(Downgrade, LongLinesGetSoftBreaksAt76) {
    std::string line = "é" + std::string(500, 'x') + "\r\n";
    auto result = downgrade_to_7bit("Subject: long\r\n\r\n" + line);
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_TRUE(all_lines_within(result.message, 76));
    EXPECT_EQ(decode_qp(result.message.substr(result.message.find("\r\n\r\n") + 4)), line);
}

TEST(Downgrade, EightBitNonTextBecomesBase64) {
    std::string message =
        "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n\xff\xfe\x01\r\n";
    auto result = downgrade_to_7bit(message);
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_NE(result.message.find("Content-Transfer-Encoding: base64"), std::string::npos);
    EXPECT_FALSE(has_8bit(result.message));
}

TEST(Downgrade, BoundsAreErrorsNotCrashes) {
    std::string deep = "MIME-Version: 1.0\r\n";
    std::string tail;
    for (int i = 0; i < 150; ++i) {
        deep += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" +
                std::to_string(i) + "\r\n";
        tail = "--b" + std::to_string(i) + "--\r\n" + tail;
    }
    deep += "Content-Type: text/plain\r\n\r\n\xe9\r\n" + tail;
    auto too_deep = downgrade_to_7bit(deep);
    EXPECT_FALSE(too_deep.ok());
    EXPECT_NE(too_deep.error.find("nesting"), std::string::npos);

    DowngradeLimits few{.max_content_types = 10};
    EXPECT_NE(downgrade_to_7bit(deep, few).error.find("MIME parts"), std::string::npos);
    std::string spaced = deep;
    for (std::size_t at = 0; (at = spaced.find("Content-Type:", at)) != std::string::npos;)
        spaced.replace(at, 13, "content-type :");
    EXPECT_NE(downgrade_to_7bit(spaced, few).error.find("MIME parts"), std::string::npos);
    DowngradeLimits small{.max_size = 10};
    EXPECT_FALSE(downgrade_to_7bit(deep, small).ok());
}

TEST(Downgrade, UnstuffRemovesOnlyTheStuffingDot) {
    EXPECT_EQ(unstuff("..leading\r\nmid.dle\r\n...two\r\n"), ".leading\r\nmid.dle\r\n..two\r\n");
    EXPECT_EQ(unstuff("plain\r\n"), "plain\r\n");
}

}  // namespace
}  // namespace smtplb::mime
