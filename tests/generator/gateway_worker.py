"""Runs a Gateway in its own process (for the shared-Redis test): config and prompts in, answers out.

Usage: python gateway_worker.py CONFIG_JSON PROMPTS_JSON; prints one JSON object with the answers
and the process's backend call count.
"""

import asyncio
import json
import sys

from instructforge.generator.gateway import Gateway
from instructforge.generator.request import GenerateRequest, Message, Sampling


async def main(config: dict, prompts: list[dict]) -> dict:
    gateway = await Gateway.create(config)
    try:
        answers = []
        for p in prompts:
            r = await gateway.generate(GenerateRequest(
                model=p["model"], messages=(Message("user", p["text"]),), sample_count=p.get("n", 1),
                sampling=Sampling(temperature=p.get("temperature")), idempotency_key=p.get("key", "")))
            answers.append({"texts": [s.text for s in r.samples], "cache_hit": r.cache_hit, "attempts": r.attempt_count})
        return {"answers": answers}
    finally:
        await gateway.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1]), json.loads(sys.argv[2])))))
