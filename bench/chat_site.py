"""`python -m bench.chat_site PROFILE_JSON WORKDIR`: the sandbox chat site in its own process.

The web-chat benchmark measures the CPU of cxprobe and its browser; running the site in the
same process would mix the site's work into those figures. Prints one JSON line with the site's
URLs once it listens, and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from sandbox.chat.site import ChatSite
from sandbox.profile import Profile


async def _serve(profile: Profile, workdir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with ChatSite(profile, workdir) as site:
        print(
            json.dumps({"url": site.url("/"), "ground_truth": str(site.ground_truth_path)}),
            flush=True,
        )
        await stop.wait()


def main() -> None:
    profile = Profile.model_validate(json.loads(sys.argv[1]))
    asyncio.run(_serve(profile, Path(sys.argv[2])))


if __name__ == "__main__":
    main()
