// Typed errors of the MLflow REST client. MLflow errors are mapped by `error_code` (never by message text);
// responses that do not come from MLflow's JSON error handler (HTML 404/405, plain-text 403) get their own class.
import { TrackingError, type MilkitErrorOptions } from '../errors.js';

export interface MlflowErrorContext {
  /** `POST /api/2.0/mlflow/runs/log-batch` */
  readonly endpoint: string;
  readonly status: number;
}

/** An error MLflow reported as `{"error_code", "message"}`. */
export class MlflowApiError extends TrackingError {
  readonly errorCode: string;
  readonly status: number;
  readonly endpoint: string;
  readonly serverMessage: string;

  constructor(errorCode: string, serverMessage: string, context: MlflowErrorContext, options: MilkitErrorOptions = {}) {
    super(`mlflow-${errorCode.toLowerCase().replace(/_/g, '-')}`, `${context.endpoint} → ${context.status} ${errorCode}: ${serverMessage.split('\n')[0]?.slice(0, 400) ?? ''}`, options);
    this.errorCode = errorCode;
    this.status = context.status;
    this.endpoint = context.endpoint;
    this.serverMessage = serverMessage;
  }
}

/** RESOURCE_ALREADY_EXISTS (e.g. an experiment name that is taken). */
export class MlflowResourceAlreadyExistsError extends MlflowApiError {}
/** RESOURCE_DOES_NOT_EXIST (unknown experiment, run or metric). */
export class MlflowResourceDoesNotExistError extends MlflowApiError {}
/** INVALID_PARAMETER_VALUE (param conflict, batch limits, bad key, deleted run, bad filter...). */
export class MlflowInvalidParameterValueError extends MlflowApiError {}
/** INTERNAL_ERROR (server-side failure; also what a missing proxied artifact gives). */
export class MlflowInternalError extends MlflowApiError {}
/** PERMISSION_DENIED / UNAUTHENTICATED from an auth-enabled server. */
export class MlflowPermissionError extends MlflowApiError {}
/** REQUEST_LIMIT_EXCEEDED / RESOURCE_EXHAUSTED / TEMPORARILY_UNAVAILABLE. */
export class MlflowThrottledError extends MlflowApiError {}

const BY_CODE: Readonly<Record<string, typeof MlflowApiError>> = {
  RESOURCE_ALREADY_EXISTS: MlflowResourceAlreadyExistsError,
  RESOURCE_DOES_NOT_EXIST: MlflowResourceDoesNotExistError,
  INVALID_PARAMETER_VALUE: MlflowInvalidParameterValueError,
  INTERNAL_ERROR: MlflowInternalError,
  PERMISSION_DENIED: MlflowPermissionError,
  UNAUTHENTICATED: MlflowPermissionError,
  REQUEST_LIMIT_EXCEEDED: MlflowThrottledError,
  RESOURCE_EXHAUSTED: MlflowThrottledError,
  TEMPORARILY_UNAVAILABLE: MlflowThrottledError,
};

const HINTS: Readonly<Record<string, string>> = {
  RESOURCE_ALREADY_EXISTS: 'Use the existing resource (milkit does get-or-create) or pick another name.',
  RESOURCE_DOES_NOT_EXIST: 'Check the id/name; the run or experiment may have been deleted on the server.',
  INVALID_PARAMETER_VALUE: 'The server rejected a value; the message above names it.',
  PERMISSION_DENIED: 'Set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD for an account with access.',
  UNAUTHENTICATED: 'Set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD.',
};

/** The typed error for an MLflow JSON error body. */
export function mlflowApiError(errorCode: string, message: string, context: MlflowErrorContext): MlflowApiError {
  const Class = BY_CODE[errorCode] ?? MlflowApiError;
  const hint = HINTS[errorCode];
  return new Class(errorCode, message, context, hint ? { hint } : {});
}

/** A non-MLflow HTTP error: an HTML page (unknown route, wrong method), a plain-text 403, a proxy's 502... */
export class MlflowHttpError extends TrackingError {
  readonly status: number;
  readonly endpoint: string;
  readonly contentType: string;
  readonly bodySnippet: string;

  constructor(context: MlflowErrorContext & { contentType: string; body: string }) {
    const { code, hint } = httpErrorKind(context.status, context.body);
    const snippet = context.body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
    super(code, `${context.endpoint} → HTTP ${context.status} (${context.contentType || 'no content type'}): ${snippet || '(empty body)'}`, { hint });
    this.status = context.status;
    this.endpoint = context.endpoint;
    this.contentType = context.contentType;
    this.bodySnippet = snippet;
  }
}

function httpErrorKind(status: number, body: string): { code: string; hint: string } {
  if (status === 401) return { code: 'mlflow-unauthenticated', hint: 'Set MLFLOW_TRACKING_TOKEN (bearer) or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (basic).' };
  if (status === 403 && /host header/i.test(body)) {
    return { code: 'mlflow-host-rejected', hint: 'The server\'s DNS-rebinding guard rejected the Host header: use the host name the server was started with, or start it with --allowed-hosts.' };
  }
  if (status === 403) return { code: 'mlflow-forbidden', hint: 'The server or a proxy in front of it refused access; check credentials and proxy rules.' };
  if (status === 404) return { code: 'mlflow-endpoint-not-found', hint: 'The tracking URI does not point at an MLflow tracking server (or misses a path prefix); `curl <uri>/version` should print a version.' };
  if (status === 405) return { code: 'mlflow-method-not-allowed', hint: 'The server does not accept this method on this route; it may be an older or non-MLflow server.' };
  if (status >= 500) return { code: 'mlflow-server-error', hint: 'The server or a proxy failed; it is retried, then the run continues offline.' };
  return { code: 'mlflow-http-error', hint: 'Check that the tracking URI points at an MLflow tracking server.' };
}

/** The server could not be reached (refused, reset, DNS, timeout) even after retries. */
export class MlflowUnreachableError extends TrackingError {
  readonly endpoint: string;
  readonly attempts: number;

  constructor(endpoint: string, attempts: number, reason: string, cause: unknown) {
    super('mlflow-unreachable', `${endpoint}: server unreachable after ${attempts} attempt${attempts === 1 ? '' : 's'} (${reason}).`, {
      hint: 'Check the tracking URI and the network; runs keep logging to the local store, and `milkit mlflow sync` uploads them later.',
      cause,
    });
    this.endpoint = endpoint;
    this.attempts = attempts;
  }
}

/** A success status with a body that is not what MLflow sends (not JSON, wrong shape). */
export class MlflowBadResponseError extends TrackingError {
  constructor(endpoint: string, status: number, detail: string) {
    super('mlflow-bad-response', `${endpoint} → ${status}: unexpected response (${detail}).`, {
      hint: 'Check that the tracking URI points at an MLflow tracking server and not at a proxy or login page.',
    });
  }
}

/** The run's artifact URI cannot be written over HTTP (not `mlflow-artifacts:`). */
export class MlflowArtifactUriError extends TrackingError {}

/** True for failures of the server as a whole (down, overloaded, failing), as opposed to a rejected request. */
export function isServerUnavailable(error: unknown): boolean {
  if (error instanceof MlflowUnreachableError) return true;
  if (error instanceof MlflowApiError || error instanceof MlflowHttpError) return error.status >= 500 || error.status === 429;
  return false;
}
