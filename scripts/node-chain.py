#!/usr/bin/env python3
"""Fills a regtest node (the Bitcoin SV node of scripts/install-bsv-node) with a chain of at
least TXS ordinary payments, for scripts/node-sync-bench.

The wallet is only used to fund a pool of keys: its coin selection slows down with every
transaction it holds, so the payments themselves are built with createrawtransaction, signed
with the pool's private keys given explicitly, and sent in JSON-RPC batches. Each payment spends
one pool output, oldest first, to two P2PKH outputs (one to another key of the pool, one back):
the pool keeps growing, so later payments spend outputs of every age. One block of at most
BLOCK payments is mined per round.

    scripts/node-chain.py URL TXS        URL: http://user:pass@127.0.0.1:PORT/
"""

import base64
import json
import sys
import time
import urllib.parse
import urllib.request

BLOCK = 2000
FEE_SATS = 1000
FUNDING_SATS = 50_000_000


class Node:
    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.url = f"{parts.scheme}://{parts.hostname}:{parts.port}/"
        creds = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password)}"
        self.auth = "Basic " + base64.b64encode(creds.encode()).decode()

    def batch(self, calls):
        if not calls:
            return []
        body = json.dumps(
            [{"jsonrpc": "1.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        ).encode()
        request = urllib.request.Request(
            self.url, body, {"Authorization": self.auth, "Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            replies = sorted(json.loads(response.read()), key=lambda r: r["id"])
        for reply in replies:
            if reply.get("error"):
                raise RuntimeError(f"{calls[reply['id']][0]}: {reply['error']}")
        return [reply["result"] for reply in replies]

    def call(self, method, *params):
        return self.batch([(method, list(params))])[0]


def btc(sats):
    return f"{sats // 100_000_000}.{sats % 100_000_000:08d}"


def main():
    node = Node(sys.argv[1])
    target = int(sys.argv[2])
    started = time.time()
    try:
        have = node.call("getchaintxstats")["txcount"] if node.call("getblockcount") > 0 else 0
    except RuntimeError:
        have = 0
    if have >= target:
        print(f"the node already holds {have} transactions", file=sys.stderr)
        return
    target -= have
    miner = node.call("getnewaddress")
    if node.call("getblockcount") < 110:
        node.call("generatetoaddress", 110, miner)

    # Fund the pool from the wallet, in a few sendmany transactions.
    keys = node.batch([("getnewaddress", [])] * 500)
    secrets = dict(zip(keys, node.batch([("dumpprivkey", [a]) for a in keys])))
    scripts = dict(
        zip(keys, (info["scriptPubKey"] for info in node.batch([("validateaddress", [a]) for a in keys])))
    )
    pool = []
    for chunk in range(0, len(keys), 100):
        addresses = keys[chunk : chunk + 100]
        txid = node.call("sendmany", "", {a: float(btc(FUNDING_SATS)) for a in addresses})
        for out in node.call("getrawtransaction", txid, 1)["vout"]:
            address = out["scriptPubKey"].get("addresses", [None])[0]
            sats = round(out["value"] * 100_000_000)
            if address in secrets and sats == FUNDING_SATS:
                pool.append((txid, out["n"], sats, address))
    node.call("generatetoaddress", 1, miner)

    made = 0
    round_no = 0
    while made < target:
        round_no += 1
        spends = pool[: min(BLOCK, target - made)]
        rest = pool[len(spends) :]
        creates = []
        for i, (txid, vout, sats, address) in enumerate(spends):
            to = keys[(i * 7 + round_no) % len(keys)]
            if to == address:
                to = keys[(i * 7 + round_no + 1) % len(keys)]
            left = sats - FEE_SATS
            if left > 2 * FEE_SATS:
                outputs = {to: float(btc(left // 2)), address: float(btc(left - left // 2))}
            else:
                outputs = {to: float(btc(left))}
            creates.append(("createrawtransaction", [[{"txid": txid, "vout": vout}], outputs]))
        unsigned = node.batch(creates)
        signs = [
            (
                "signrawtransaction",
                [
                    raw,
                    [{"txid": txid, "vout": vout, "scriptPubKey": scripts[address], "amount": float(btc(sats))}],
                    [secrets[address]],
                ],
            )
            for raw, (txid, vout, sats, address) in zip(unsigned, spends)
        ]
        signed = [s["hex"] for s in node.batch(signs)]
        txids = node.batch([("sendrawtransaction", [raw]) for raw in signed])
        decoded = node.batch([("decoderawtransaction", [raw]) for raw in signed])
        pool = rest
        for txid, tx in zip(txids, decoded):
            for out in tx["vout"]:
                address = out["scriptPubKey"]["addresses"][0]
                pool.append((txid, out["n"], round(out["value"] * 100_000_000), address))
        made += len(txids)
        node.call("generatetoaddress", 1, miner)
        if round_no % 10 == 0:
            print(f"  {made} payments, {time.time() - started:.0f} s", file=sys.stderr)
    print(
        f"{made} payments in {round_no} blocks, height {node.call('getblockcount')}, "
        f"{time.time() - started:.0f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
