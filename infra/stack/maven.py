"""Jars from Maven Central, resolved once by the machine's Maven into a cache folder.

Contract:
- :func:`resolve_jars` writes a POM listing the artifacts beside the folder,
  has ``mvn dependency:copy-dependencies`` copy them and their runtime
  dependencies into a staging folder, and renames it into place only when a
  jar matching ``expect`` is there: a folder that exists is complete, and
  later calls return it without touching the network.
- ``StackConfig.maven_mirror`` and ``maven_repo_local`` apply to every call.
- A failure raises :class:`~runwire.errors.StackError` saying what was
  fetched from where and how to fix it.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from runwire.errors import StackError
from runwire.infra.stack.config import StackConfig
from runwire.infra.stack.process import ensure_writable_dir, run

Artifact = tuple[str, str, str]
"""(groupId, artifactId, version)."""

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.runwire</groupId>
  <artifactId>{name}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""

_DEPENDENCY = """    <dependency>
      <groupId>{0}</groupId>
      <artifactId>{1}</artifactId>
      <version>{2}</version>
    </dependency>"""

_MAVEN_SETTINGS = """<settings>
  <mirrors>
    <mirror>
      <id>runwire-mirror</id>
      <mirrorOf>*</mirrorOf>
      <url>{url}</url>
    </mirror>
  </mirrors>
</settings>
"""


async def resolve_jars(
    config: StackConfig,
    libs: Path,
    artifacts: Sequence[Artifact],
    *,
    name: str,
    expect: str,
    what: str,
    then: str = "try again",
) -> Path:
    """``artifacts`` and their runtime dependencies in ``libs`` (resolved once); ``libs``."""
    if libs.is_dir():  # noqa: ASYNC240 - one stat of a local folder
        return libs
    work = libs.parent
    ensure_writable_dir(work, "the download cache")
    pom = work / "pom.xml"
    pom.write_text(
        _POM.format(name=name, dependencies="\n".join(_DEPENDENCY.format(*a) for a in artifacts))
    )
    staging = work / f"{libs.name}.partial-{uuid.uuid4().hex[:8]}"
    argv = [
        config.maven,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    source = "Maven Central"
    if config.maven_mirror:
        settings = work / "maven-settings.xml"
        settings.write_text(_MAVEN_SETTINGS.format(url=config.maven_mirror))
        argv += ["-s", str(settings)]
        source = f"the Maven mirror {config.maven_mirror}"
    if config.maven_repo_local:
        argv.append(f"-Dmaven.repo.local={config.maven_repo_local}")
    fix = (
        "check that this machine reaches Maven Central (or set RUNWIRE_STACK_MAVEN_MIRROR"
        f" to a mirror it reaches), then {then}"
    )
    try:
        await run(argv, limit=600, what=f"Maven fetching {what} from {source}", fix=fix, cwd=work)
        if not any(staging.glob(expect)):
            raise StackError(f"Maven fetched no {expect} into {staging}", fix)
        staging.replace(libs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return libs
