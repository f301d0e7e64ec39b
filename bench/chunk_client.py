#!/usr/bin/env python3
"""A small SMTP load client for the BDAT benchmark (smtp-source has no
BDAT): SESSIONS connections, each sending its share of MESSAGES messages of
SIZE bytes to RECIPIENTS recipients (one by default), with DATA or with
BDAT (one chunk, or CHUNKS chunks per message), the envelope pipelined (RFC
2920), as an MTA sends. The same client sends both ways, so the two are
compared with the same load generator.

  python3 bench/chunk_client.py --port 2525 --messages 2000 --sessions 20 \\
      --size 102400 --verb bdat [--chunks 4] [--recipients 50]

Prints the seconds from its first connection to its last reply ("seconds
S"): a caller that timed the whole process would count the interpreter's
start, which on a few large messages is a good part of the time.
Exits 1 (with the reply on stderr) when any reply is not the expected one.
"""
import argparse
import asyncio
import sys
import time


def make_body(size):
    """smtp-source's kind of message: a few headers and lines of text."""
    head = b"From: bench@example.org\r\nTo: user@example.net\r\nSubject: bench\r\n\r\n"
    line = b"La de da de da 1. La de da de da 2. La de da de da 3. La de da de da 4.\r\n"
    body = head + line * max(0, -(-(size - len(head)) // len(line)))
    return body[:size - 2] + b"\r\n" if len(body) > size else body


async def read_reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise RuntimeError("connection closed")
        if line[3:4] != b"-":
            return line


async def expect(reader, code):
    line = await read_reply(reader)
    if not line.startswith(code):
        raise RuntimeError(f"expected {code.decode()}: {line!r}")


async def session(port, count, body, verb, chunks, recipients):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
    await expect(reader, b"220")
    writer.write(b"EHLO bench.example\r\n")
    await expect(reader, b"250")
    envelope = b"MAIL FROM:<bench@example.org>\r\n" + b"".join(
        b"RCPT TO:<user%d@example.net>\r\n" % n for n in range(recipients))
    rcpt_ok = [b"250"] * recipients
    if verb == "bdat":
        step = -(-len(body) // chunks)
        pieces = [body[i:i + step] for i in range(0, len(body), step)]
        commands = b"".join(b"BDAT %d%s\r\n%s" % (len(p), b" LAST" if i == len(pieces) - 1 else b"",
                                                   p) for i, p in enumerate(pieces))
        for _ in range(count):
            writer.write(envelope + commands)
            for code in [b"250"] + rcpt_ok + [b"250"] * len(pieces):
                await expect(reader, code)
    else:
        for _ in range(count):
            writer.write(envelope + b"DATA\r\n")
            for code in [b"250"] + rcpt_ok + [b"354"]:
                await expect(reader, code)
            writer.write(body + b".\r\n")
            await expect(reader, b"250")
    writer.write(b"QUIT\r\n")
    await expect(reader, b"221")
    writer.close()


async def run(args):
    body = make_body(args.size)
    shares = [args.messages // args.sessions + (1 if i < args.messages % args.sessions else 0)
              for i in range(args.sessions)]
    await asyncio.gather(*(session(args.port, n, body, args.verb, args.chunks, args.recipients)
                           for n in shares if n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=102400)
    ap.add_argument("--verb", choices=("data", "bdat"), default="bdat")
    ap.add_argument("--chunks", type=int, default=1, help="BDAT chunks per message")
    ap.add_argument("--recipients", type=int, default=1, help="recipients per message")
    args = ap.parse_args()
    try:
        began = time.monotonic()
        asyncio.run(run(args))
        print(f"seconds {time.monotonic() - began:.6f}")
    except Exception as e:  # one line for the benchmark's log
        print(f"chunk_client: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
