"""A long-lived search process for cross-process tests: one JSON request per stdin line, one reply per line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from index.search import SearchRequest, search
from index.service import get_live_index


def main() -> None:
    """Load the index once, then answer requests until stdin closes."""
    print(json.dumps({"ready": len(get_live_index())}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        image = Path(request["image"]).read_bytes() if "image" in request else None
        results = search(SearchRequest(text=request.get("text"), image=image, limit=request.get("limit", 10)))
        print(json.dumps({"results": [r.to_dict() for r in results], "index_size": len(get_live_index())}), flush=True)


if __name__ == "__main__":
    main()
