#include "base/text.hpp"

#include <gtest/gtest.h>

using smtplb::base::edit_distance;

TEST(EditDistance, CountsInsertionsDeletionsSubstitutionsAndSwaps) {
    EXPECT_EQ(edit_distance("messages", "messages"), 0u);
    EXPECT_EQ(edit_distance("mesages", "messages"), 1u);    // one left out
    EXPECT_EQ(edit_distance("messagess", "messages"), 1u);  // one too many
    EXPECT_EQ(edit_distance("hostnane", "hostname"), 1u);   // one wrong
    EXPECT_EQ(edit_distance("hostnmae", "hostname"), 1u);   // two swapped
    EXPECT_EQ(edit_distance("", "tls"), 3u);
    EXPECT_EQ(edit_distance("burst", ""), 5u);
    EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}
