#include <gtest/gtest.h>

#include "base/base64.hpp"

using smtplb::base::base64_decode;
using smtplb::base::base64_encode;

TEST(Base64, Rfc4648Vectors) {
    const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                           {"f", "Zg=="},
                                                           {"fo", "Zm8="},
                                                           {"foo", "Zm9v"},
                                                           {"foob", "Zm9vYg=="},
                                                           {"fooba", "Zm9vYmE="},
                                                           {"foobar", "Zm9vYmFy"}};
    for (auto [plain, encoded] : vectors) {
        EXPECT_EQ(base64_encode(plain), encoded);
        EXPECT_EQ(base64_decode(encoded), std::optional<std::string>(plain));
    }
    std::string sasl("\0alice\0secret", 13);
    EXPECT_EQ(base64_decode(base64_encode(sasl)), sasl);
}

TEST(Base64, NonCanonicalOrMalformedTextIsRefused) {
    for (const char* bad : {"Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zm 9v", "Zm9v\r\n",
                            "Zm9v=", "=Zm9", "Zg==Zg==", "Zm-v", "Zm9\x80"})
        EXPECT_FALSE(base64_decode(bad)) << bad;
}
