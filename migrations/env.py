import logging
import time
from logging.config import fileConfig

from alembic import context
from flask import current_app

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
# The app has already set up JSON logging when it runs migrations; keep it.
if not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")


def get_engine():
    return current_app.extensions["migrate"].db.engine


def get_engine_url():
    try:
        return get_engine().url.render_as_string(hide_password=False).replace("%", "%%")
    except AttributeError:
        return str(get_engine().url).replace("%", "%%")


# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
config.set_main_option("sqlalchemy.url", get_engine_url())
target_db = current_app.extensions["migrate"].db

# other values from the config, defined by the needs of env.py,
# can be acquired:
# my_important_option = config.get_main_option("my_important_option")
# ... etc.


def get_metadata():
    if hasattr(target_db, "metadatas"):
        return target_db.metadatas[None]
    return target_db.metadata


def render_item(type_, obj, autogen_context):
    """Write a TypeDecorator as the database type it stores, so that revisions never
    import application code (app.db.UTCDateTime becomes sa.DateTime(timezone=True))."""
    import sqlalchemy as sa

    if type_ == "type" and isinstance(obj, sa.types.TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def run_migrations_offline():
    """Run migrations in 'offline' mode.

    This configures the context with just a URL
    and not an Engine, though an Engine is acceptable
    here as well.  By skipping the Engine creation
    we don't even need a DBAPI to be available.

    Calls to context.execute() here emit the given string to the
    script output.

    """
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=get_metadata(),
        literal_binds=True,
        render_item=render_item,
        compare_type=True,
        render_as_batch=True,
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = current_app.extensions["migrate"].configure_args
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    connectable = get_engine()

    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=get_metadata(), render_item=render_item, **conf_args)
        if connection.dialect.name != "postgresql":
            with context.begin_transaction():
                context.run_migrations()
            return
        _run_on_postgresql(connection)


# Any constant: the key of the advisory lock that lets one migration run at a time.
MIGRATION_LOCK_KEY = 0x53544F5245  # "STORE"


def _run_on_postgresql(connection):
    """Migrations on PostgreSQL, for a release on a live site:

    - one at a time: a second ``flask db upgrade`` (another replica's release) waits for
      the first, then finds nothing to do;
    - each lock a migration asks for is waited on at most ``MIGRATION_LOCK_TIMEOUT``
      seconds: while it waits, every request for that table queues behind it, so a long
      read in progress (an export) would hold the whole site up. Past the timeout the
      migrations (one transaction) roll back and are tried again, up to
      ``MIGRATION_LOCK_ATTEMPTS`` times; then the release fails, to be run again.
    """
    from sqlalchemy.exc import OperationalError

    settings = current_app.config
    timeout_ms = int(settings["MIGRATION_LOCK_TIMEOUT"]) * 1000
    attempts = int(settings["MIGRATION_LOCK_ATTEMPTS"])
    connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
    connection.commit()
    try:
        for attempt in range(1, attempts + 1):
            try:
                with context.begin_transaction():
                    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {timeout_ms}")
                    context.run_migrations()
                return
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != "55P03" or attempt == attempts:
                    raise
                logger.warning(
                    "a table the migration needs stayed locked for %d s (attempt %d of %d): trying again",
                    timeout_ms // 1000,
                    attempt,
                    attempts,
                )
                time.sleep(min(2 * attempt, 10))
    finally:
        # A broken connection must not hide the error that ended the run: its session's
        # lock goes with it anyway.
        try:
            if connection.in_transaction():
                connection.rollback()
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
            connection.commit()
        except Exception:
            logger.warning("could not release the migration lock (it ends with the connection)", exc_info=True)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
