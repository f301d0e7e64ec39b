#include <gtest/gtest.h>

#include "base/base64.hpp"
#include "proto/dovecot_auth.hpp"

using namespace smtplb::proto;
using State = DovecotAuthClient::State;

namespace {
const char* kHandshake =
    "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t42\nCUID\t7\n"
    "COOKIE\tabcdef\nDONE\n";

ClientIdentity client() {
    ClientIdentity id;
    id.address = *smtplb::base::IpAddress::parse("192.0.2.7");
    id.local_address = *smtplb::base::IpAddress::parse("198.51.100.1");
    id.port = 40000;
    id.local_port = 587;
    return id;
}
}  // namespace

TEST(DovecotAuth, HandshakeRequestAndVerdicts) {
    EXPECT_EQ(DovecotAuthClient::handshake(99), "VERSION\t1\t1\nCPID\t99\n");
    for (auto [reply, verdict] : {std::pair{"OK\t1\tuser=alice\n", State::Ok},
                                  std::pair{"FAIL\t1\tuser=alice\n", State::Fail},
                                  std::pair{"FAIL\t1\ttemp\treason=db down\n", State::TempFail}}) {
        DovecotAuthClient c;
        // Arriving in pieces is the same as arriving at once.
        std::string handshake = kHandshake;
        c.feed(handshake.substr(0, 10));
        EXPECT_EQ(c.state(), State::Handshake);
        c.feed(handshake.substr(10));
        ASSERT_EQ(c.state(), State::Ready);
        auto request = c.request("alice", "s3cret", client(), true);
        EXPECT_EQ(request,
                  "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tsecured\trip=192.0.2.7\t"
                  "lip=198.51.100.1\trport=40000\tlport=587\tresp=" +
                      smtplb::base::base64_encode(std::string("\0alice\0s3cret", 13)) + "\n");
        c.feed(reply);
        EXPECT_EQ(c.state(), verdict) << reply;
    }
}

TEST(DovecotAuth, WrongServersAreErrors) {
    const char* bad[] = {
        "VERSION\t2\t0\n",                     // another major version
        "MECH\tPLAIN\nVERSION\t1\t2\n",        // no VERSION first
        "VERSION\t1\t2\nMECH\tLOGIN\nDONE\n",  // no PLAIN
    };
    for (const char* wire : bad) {
        DovecotAuthClient c;
        c.feed(wire);
        EXPECT_EQ(c.state(), State::Error) << wire;
        EXPECT_FALSE(c.error().empty());
    }
    DovecotAuthClient c;
    c.feed(kHandshake);
    c.request("a", "b", client(), false);
    c.feed("OK\t2\n");  // someone else's request
    EXPECT_EQ(c.state(), State::Error);
    DovecotAuthClient d;
    d.feed(std::string(20000, 'x'));  // no line end: bounded
    EXPECT_EQ(d.state(), State::Error);
    DovecotAuthClient e;
    e.feed(kHandshake);
    e.request("a", "b", client(), false);
    e.feed("CONT\t1\tabc\n");
    EXPECT_EQ(e.state(), State::Error);
}
