"""One service call: rate limit, one write transaction, key resolution, authorization, audit.

Every call appends exactly one audit event: with the call's own changes when it succeeds, or
alone in a new transaction (after rolling the call back) when it fails or is denied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...errors import KeyNotFoundError, KMSError
from ..authz.policy import (
    AuthorizationRequest,
    access_denied,
    authorize,
    authorize_retire,
    parse_policy,
    request_independent,
    would_lock_out,
)
from ..authz.request import RequestFacts
from ..model.access import Grant, check_grant_tokens, load_grants
from ..model.errors import AccessDeniedError, InvalidCiphertextError
from ..model.keys import KeyRecord, load_key, parse_key_ref
from ..model.params import Args
from ..model.shapes import Operation
from ..model.sql import Connection
from ..model.validation import KEY_ONLY_MEMBERS, is_alias, key_only_error, validate
from ..store.audit import AuditLog, encode_event
from ..store.backend import StoreUnavailableError
from ..store.database import STATE_QUERY, bump_counter
from ..store.partition import KeyEntry, Region
from . import due as _due
from .paramcheck import ParamCheck
from .principals import load_identity_policies
from .servicekeys import create_service_key
from .session import Session

__all__ = ["Call", "Handler", "Plan", "Retry", "execute", "record_rejected"]

_MAX_ATTEMPTS = 4
_DECISIONS_PER_KEY = 256  # cached authorization decisions per key entry


class Retry(Exception):
    """Internal: roll the call back, run ``action`` in its own transactions, then run the call again.

    Used for lazy lifecycle work (rotation, deletion, expiry, replica sync) so that work commits
    whatever the outcome of the call that noticed it.
    """

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__("retry")
        self.action = action


class Call:
    """The state of one call inside its transaction; operation functions receive it."""

    __slots__ = (
        "after",
        "aliases_used",
        "args",
        "changed",
        "conn",
        "key_arns",
        "may_retry",
        "now",
        "plan",
        "region",
        "response_elements",
        "session",
    )

    def __init__(self, session: Session, region: Region, conn: Connection, now: float,
                 args: Args, may_retry: bool, plan: Plan) -> None:
        self.plan = plan
        self.session = session
        self.region = region
        self.conn = conn
        self.now = now
        self.args = args
        self.changed = False
        self.key_arns: list[str] = []
        self.aliases_used: dict[str, str] = {}  # key id -> the alias name the request named it by
        self.after: list[Callable[[], None]] = []
        self.may_retry = may_retry
        self.response_elements = True

    # -- keys ----------------------------------------------------------------------------------
    def entry(self, key_id: str) -> KeyEntry | None:
        """The cached state of a key of this region by id (no account check, no lifecycle)."""
        cache = self.region.keys
        if key_id in cache:
            return cache[key_id]
        rec = load_key(self.conn, key_id)
        if rec is None:
            cache[key_id] = None
            return None
        arn = self.region.arn(rec.account, key_id)
        found = KeyEntry(rec, arn, parse_policy(rec.policy, stored=True), load_grants(self.conn, key_id, arn),
                         _due.due_at(rec, self.region.name))
        cache[key_id] = found
        return found

    def alias_target(self, account: str, alias_name: str) -> str | None:
        """The key id an alias points to, or None."""
        cache = self.region.aliases
        slot = (account, alias_name)
        if slot in cache:
            return cache[slot]
        row = self.conn.execute("SELECT key_id FROM aliases WHERE account = ? AND alias_name = ?",
                                slot).fetchone()
        target = None if row is None else str(row[0])
        cache[slot] = target
        return target

    def key(self, value: str, *, service_keys: bool = True, any_account: bool = False) -> KeyEntry:
        """Resolve a KeyId parameter (id, ARN, alias, alias ARN) and apply due lifecycle work.

        ``any_account``: a bare key id may name another account's key (ids taken from ciphertexts).

        :raises KeyNotFoundError: no such key (or alias) for the account in this region.
        """
        ref = parse_key_ref(value, self.region.name)
        account = ref.account or self.session.account
        if ref.kind == "alias":
            key_id = self.alias_target(account, ref.name)
            if key_id is None:
                if service_keys and ref.name.startswith("alias/aws/") and account == self.session.account:
                    key_id = create_service_key(self, ref.name)
                else:
                    raise KeyNotFoundError(
                        f"Alias arn:aws:kms:{self.region.name}:{account}:{ref.name} is not found.")
            self.aliases_used[key_id] = ref.name
        else:
            key_id = ref.name
        found = self.entry(key_id)
        if found is None or (found.record.account != account
                             and not (any_account and ref.kind == "key" and ref.account is None)):
            raise KeyNotFoundError(f"Key '{self.region.arn(account, key_id)}' does not exist")
        if found.due_at is not None and found.due_at <= self.now and self.may_retry:
            session, region, now = self.session, self.region, self.now
            raise Retry(lambda: _due.apply_due(session, region, now))
        self.key_arns.append(found.arn)
        return found

    def subject(self, *, service_keys: bool = True, context: Mapping[str, str] | None = None,
                grant_tokens: tuple[str, ...] = ()) -> KeyEntry:
        """The key the operation acts on (its ``KeyId``, per the operation table), resolved and
        authorized for the table's IAM action: the prologue every single-key operation shares.

        Call it after reading the other arguments (their errors come first, as before).
        :param service_keys: whether ``alias/aws/...`` creates the AWS managed key on first use.
        :param context: the request's encryption context; ``grant_tokens``: its grant tokens
            (both for the authorization, as `authorize` takes them).
        """
        name = self.plan.subject
        if name is None:
            raise RuntimeError(f"envelope: internal error: {self.plan.operation.name} names no key")
        entry = self.key(self.args.key_id(name), service_keys=service_keys)
        self.authorize(self.plan.operation.iam_action, entry, context=context, grant_tokens=grant_tokens)
        return entry

    def reload(self, entry: KeyEntry) -> KeyEntry:
        """A fresh view of a key changed in this call (the cache is reset at commit)."""
        self.region.keys.pop(entry.record.key_id, None)
        fresh = self.entry(entry.record.key_id)
        if fresh is None:
            raise KeyNotFoundError(f"Key '{entry.arn}' does not exist")
        return fresh

    def mark_changed(self) -> None:
        """Record that this call changed cached state (keys, aliases, grants, policies)."""
        if not self.changed:
            self.changed = True
            bump_counter(self.conn)

    # -- material ------------------------------------------------------------------------------
    def material(self, entry: KeyEntry, version: int) -> bytes:
        """Unsealed backing-key material of one version (cached with the entry)."""
        found = entry.materials.get(version)
        if found is not None:
            return found
        key_id = entry.record.key_id
        row = self.conn.execute("SELECT sealed FROM key_versions WHERE key_id = ? AND version = ?",
                                (key_id, version)).fetchone()
        if row is None:
            rec = entry.record
            if rec.multi_region and rec.primary_region not in (None, self.region.name) and self.may_retry:
                # A replica that has not seen the primary's newer material yet: fetch it, retry.
                session, region = self.session, self.region
                raise Retry(lambda: _due.sync_replica(session, region, key_id))
            raise InvalidCiphertextError("the ciphertext refers to key material that is not available")
        found = self.session.partition.sealer.open(row[0], key_id, version)
        entry.materials[version] = found
        return found

    def aead(self, entry: KeyEntry, version: int) -> AESGCM:
        """An AES-GCM object for one symmetric backing key (cached with the entry)."""
        found = entry.aeads.get(version)
        if found is None:
            found = AESGCM(self.material(entry, version))
            entry.aeads[version] = found
        return found

    # -- authorization -------------------------------------------------------------------------
    def identity_policies(self) -> tuple[dict[str, object], ...]:
        """The caller's identity policies (none for an account root)."""
        principal = self.session.principal
        if principal.endswith(":root"):
            return ()
        partition = self.session.partition
        partition.check_identity_cache()
        found = partition.identity_cache.get(principal)
        if found is None:
            found = load_identity_policies(partition, principal)
            partition.identity_cache[principal] = found
        return found

    def authorize(self, action: str, entry: KeyEntry | None, *,
                  context: Mapping[str, str] | None = None, grant_tokens: tuple[str, ...] = ()) -> None:
        """Check the caller may perform ``action`` on the key (``None``: an account-level action).

        Policy condition keys read the call's parameters, the key (its attributes, aliases and
        tags), the alias the call named it by, and the session's transport (`_request`).

        :raises AccessDeniedError: the policies and grants do not allow it.
        :raises InvalidGrantTokenError: a grant token is malformed.
        """
        check_grant_tokens(grant_tokens)
        s = self.session
        if entry is None:
            request = self._request(action, None, context, grant_tokens)
            decision = authorize(request, None, self.identity_policies(), ())
            if not decision.allowed:
                raise AccessDeniedError(str(access_denied(request, decision)))
            return
        identities = self.identity_policies()
        slot = (s.principal, action)
        cached = entry.decisions.get(slot)
        if cached is not None and cached[0] is identities:
            decision = cached[1]
        else:
            decision = authorize(self._request(action, entry, context, grant_tokens), entry.policy,
                                 identities, entry.grants)
            # Policy decision cache: valid while the entry is (the region's change counter is
            # unchanged) and the identity policies are the same objects (the IAM store is unchanged).
            if len(entry.decisions) < _DECISIONS_PER_KEY and request_independent(entry.policy, identities,
                                                                                 entry.grants):
                entry.decisions[slot] = (identities, decision)
        if not decision.allowed:
            request = self._request(action, entry, context, grant_tokens)
            raise AccessDeniedError(str(access_denied(request, decision)))

    def authorize_retire(self, entry: KeyEntry, grant: Grant) -> None:
        """Check the caller may retire ``grant`` (the grant decides; see `policy.authorize_retire`).

        :raises AccessDeniedError: it may not.
        """
        request = self._request("kms:RetireGrant", entry, None, ())
        decision = authorize_retire(request, grant, self.identity_policies())
        if not decision.allowed:
            raise AccessDeniedError(str(access_denied(request, decision)))

    def would_lock_out(self, policy: Mapping[str, object], key_arn: str, key_account: str,
                       entry: KeyEntry | None = None) -> bool:
        """KMS's lockout safety check for a policy this call sets (`policy.would_lock_out`), with
        this call's facts: its caller, transport and parameters, and the key if it exists."""
        return would_lock_out(policy, self.session.principal, self.identity_policies(), key_arn=key_arn,
                              key_account=key_account, facts=self._facts("kms:PutKeyPolicy", entry))

    def _facts(self, action: str, entry: KeyEntry | None) -> RequestFacts:
        s = self.session
        return RequestFacts(
            self.args.raw, None if entry is None else _KeyView(entry.record, self.conn, self.region.name),
            None if entry is None else self.aliases_used.get(entry.record.key_id), self.region.name,
            self.now, s.source_ip, s.user_agent, s.secure_transport,
            None if entry is None or not action.startswith("kms:ReEncrypt") else lambda: self._same_key(entry))

    def _request(self, action: str, entry: KeyEntry | None, context: Mapping[str, str] | None,
                 grant_tokens: tuple[str, ...]) -> AuthorizationRequest:
        s = self.session
        facts = self._facts(action, entry)
        if entry is None:
            return AuthorizationRequest(s.principal, action, "*", s.account, context, grant_tokens,
                                        s.via_service, facts=facts)
        return AuthorizationRequest(s.principal, action, entry.arn, entry.record.account, context,
                                    grant_tokens, s.via_service, facts=facts)

    def _same_key(self, entry: KeyEntry) -> bool:
        """kms:ReEncryptOnSameKey: whether ReEncrypt's source and destination are one key.

        ReEncryptFrom is authorized before the destination is resolved, so its KeyId is resolved
        here (without lifecycle work); the source is the first key this call resolved.
        """
        source = self.key_arns[0] if self.key_arns else entry.arn
        dest_ref = self.args.raw.get("DestinationKeyId")
        if not isinstance(dest_ref, str):
            return False
        try:
            ref = parse_key_ref(dest_ref, self.region.name)
        except (KMSError, ValueError):
            return False
        account = ref.account or self.session.account
        dest_id = self.alias_target(account, ref.name) if ref.kind == "alias" else ref.name
        return dest_id is not None and self.region.arn(account, dest_id) == source


class _KeyView:
    """A key as policy condition keys see it (`KeyFacts`): its record's attributes, and its
    aliases and tags read from this call's transaction only if a policy asks for them."""

    __slots__ = ("_conn", "_rec", "_region")

    def __init__(self, rec: KeyRecord, conn: Connection, region: str) -> None:
        self._rec, self._conn, self._region = rec, conn, region

    @property
    def spec(self) -> str:
        return self._rec.key_spec

    @property
    def usage(self) -> str:
        return self._rec.key_usage

    @property
    def origin(self) -> str:
        return self._rec.origin

    @property
    def multi_region(self) -> bool:
        return self._rec.multi_region

    @property
    def region_type(self) -> str | None:
        if not self._rec.multi_region:
            return None
        return "PRIMARY" if self._rec.primary_region in (None, self._region) else "REPLICA"

    def aliases(self) -> tuple[str, ...]:
        rows = self._conn.execute("SELECT alias_name FROM aliases WHERE account = ? AND key_id = ? "
                                  "ORDER BY alias_name", (self._rec.account, self._rec.key_id)).fetchall()
        return tuple(str(name) for (name,) in rows)

    def tags(self) -> tuple[tuple[str, str], ...]:
        rows = self._conn.execute("SELECT tag_key, tag_value FROM tags WHERE key_id = ? ORDER BY tag_key",
                                  (self._rec.key_id,)).fetchall()
        return tuple((str(k), str(v)) for k, v in rows)


Handler = Callable[[Call], dict[str, Any]]


class Plan:
    """One operation ready to run, built once from its row of the operation table: the row, the
    handler, the parameter check and the members that refuse aliases."""

    __slots__ = ("check", "claimed", "handler", "key_only", "operation", "subject")

    def __init__(self, operation: Operation, handler: Handler) -> None:
        self.operation = operation
        self.handler = handler
        self.check = ParamCheck(operation)
        self.key_only = KEY_ONLY_MEMBERS.get(operation.name, ())
        # The key the operation acts on: its required ``KeyId`` member, which `Call.subject`
        # resolves and authorizes for the handler (the engine reads it: `Args.finish` knows).
        self.subject = next((m.name for m in operation.members
                             if m.name == "KeyId" and m.shape == "KeyIdType" and m.required), None)
        self.claimed = frozenset(() if self.subject is None else (self.subject,))


def execute(session: Session, plan: Plan, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Run one operation (its precomputed `Plan`) with its audit event; see the module docstring."""
    region = session.partition.region(session.region)
    now = session.clock()
    operation = plan.operation
    op, read_only, fn = operation.name, operation.read_only, plan.handler
    args = Args(op, raw, plan.claimed)
    key_arns: list[str] = []
    try:
        if session.limiter is not None:
            session.limiter.acquire(session.region, op, now)
        # Names and Python types first (botocore refuses those before sending), then the model's
        # constraints, before anything else, authorization included, as AWS does
        # (https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html).
        plan.check(raw)
        validate(operation, raw)
    except (KMSError, TypeError) as exc:
        _audit_failure(session, region, op, raw, exc, now, key_arns, read_only)
        raise
    key_only = plan.key_only
    for attempt in range(_MAX_ATTEMPTS):
        conn = region.db.begin()
        call = Call(session, region, conn, now, args, attempt < _MAX_ATTEMPTS - 1, plan)
        try:
            counter, head_seq, head_hash = conn.execute(STATE_QUERY).fetchone()
            if counter != region.counter:
                region.reset_cache(counter)
            args.reset()
            if key_only:
                _refuse_aliases(call, key_only, raw)
            result = fn(call)
            AuditLog.append_encoded(conn, encode_event(
                event_name=op, region=session.region, account=session.account,
                principal=session.principal, request_parameters=raw,
                response_elements=result if call.response_elements else None, error_code=None,
                error_message=None, key_arns=call.key_arns, now=now,
                source_ip=session.source_ip, user_agent=session.user_agent, read_only=read_only),
                head=(head_seq, head_hash), key=region.audit_key)
        except Retry as retry:
            region.db.rollback(conn)
            region.reset_cache()
            retry.action()
            continue
        except BaseException as exc:
            region.db.rollback(conn)
            if call.changed:
                region.reset_cache()
            if not isinstance(exc, StoreUnavailableError):  # nothing to write the event to: the
                _audit_failure(session, region, op, raw, exc, now, call.key_arns, read_only)  # call did nothing
            raise
        try:
            region.db.commit(conn)
        finally:
            if call.changed:
                region.reset_cache()
        for action in call.after:
            action()
        return result
    raise RuntimeError("envelope: internal error: lifecycle retries did not settle")


def _refuse_aliases(call: Call, names: tuple[str, ...], raw: Mapping[str, Any]) -> None:
    """Refuse an alias where the operation takes only a key ID or key ARN, as AWS does
    (e.g. https://docs.aws.amazon.com/kms/latest/APIReference/API_EnableKeyRotation.html)."""
    for name in names:
        value = raw.get(name)
        if isinstance(value, str) and is_alias(value):
            try:
                ref = parse_key_ref(value, call.region.name)
            except KMSError:
                raise key_only_error(value, None) from None
            account = call.session.account
            # Only the caller's own aliases are looked up: another account's would leak its key id.
            own = ref.account in (None, account)
            raise key_only_error(value, call.alias_target(account, ref.name) if own else None)


def record_rejected(session: Session, op: str, raw: Mapping[str, Any], error: KMSError) -> None:
    """Audit a request refused before it reached an operation (unknown operation, a body that
    is not JSON, invalid members): CloudTrail records such failed calls with their error code too.
    ``raw``: its parameters, as far as they were read (secrets are left out as for any event)."""
    region = session.partition.region(session.region)
    _audit_failure(session, region, op, raw, error, session.clock(), [], False)


def _audit_failure(session: Session, region: Region, op: str, raw: Mapping[str, Any],
                   exc: BaseException, now: float, key_arns: list[str], read_only: bool) -> None:
    if isinstance(exc, KMSError):
        code, message = exc.code, exc.response["Error"]["Message"]  # AWS's message, without our hint
    elif isinstance(exc, (TypeError, ValueError)):
        code, message = "ValidationException", str(exc)
    else:
        code, message = "KMSInternalException", "internal error"
    event = encode_event(event_name=op, region=session.region, account=session.account,
                         principal=session.principal, request_parameters=raw, response_elements=None,
                         error_code=code, error_message=message, key_arns=key_arns, now=now,
                         source_ip=session.source_ip, user_agent=session.user_agent, read_only=read_only)
    with region.db.transaction() as conn:
        AuditLog.append_encoded(conn, event, key=region.audit_key)
