"""The hub's own web UI (teacher, student, admin), served with all assets local."""

from apiflask import APIBlueprint

bp = APIBlueprint("web", __name__, enable_openapi=False)


@bp.get("/")
def index() -> tuple[str, int, dict[str, str]]:
    return "<!doctype html><meta charset=utf-8><title>课堂微云</title><p>课堂微云服务器</p>", 200, {"Content-Type": "text/html; charset=utf-8"}
