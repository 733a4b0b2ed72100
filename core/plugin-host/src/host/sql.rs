//! `sql`: statements on a named PostgreSQL connection held by the host.
//!
//! Statements without parameters use the simple protocol (several statements may be sent
//! at once, as templates often are); statements with parameters are prepared unnamed, so
//! dynamic SQL never fills a statement cache. Query results are read as a stream and
//! refused at the first row or byte past the caps, never loaded whole and checked after.

use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Column, Postgres, Row, TypeInfo, ValueRef};

use super::wit::latest::arcan::plugin::sql::{self, Rows, Statement, Value};
use super::{HostState, bounded};
use crate::connections::sql_error;
use crate::model::HostFault;

/// Longest statement.
pub const MAX_SQL_BYTES: usize = 64 * 1024;
/// Most parameters of one statement.
pub const MAX_PARAMS: usize = 1000;
/// Most statements in one transaction.
pub const MAX_STATEMENTS: usize = 100;
/// Most rows one query returns.
pub const MAX_ROWS: usize = 10_000;
/// Largest total of parameter or result bytes.
pub const MAX_DATA_BYTES: usize = 4 * 1024 * 1024;

fn value_len(v: &Value) -> usize {
    match v {
        Value::Text(s) => s.len(),
        Value::Bytes(b) => b.len(),
        _ => 8,
    }
}

fn check_statement(sql_text: &str, params: &[Value]) -> Result<(), HostFault> {
    bounded("statement", sql_text.len(), MAX_SQL_BYTES)?;
    if params.len() > MAX_PARAMS {
        return Err(HostFault::Invalid(format!(
            "{} parameters, more than the {MAX_PARAMS} allowed",
            params.len()
        )));
    }
    bounded(
        "parameters",
        params.iter().map(value_len).sum(),
        MAX_DATA_BYTES,
    )
}

fn bind<'q>(q: Query<'q, Postgres, PgArguments>, v: &'q Value) -> Query<'q, Postgres, PgArguments> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Boolean(b) => q.bind(*b),
        Value::Int(i) => q.bind(*i),
        Value::Float(f) => q.bind(*f),
        Value::Text(s) => q.bind(s.clone()),
        Value::Bytes(b) => q.bind(b.clone()),
    }
}

fn prepared<'q>(sql_text: &'q str, params: &'q [Value]) -> Query<'q, Postgres, PgArguments> {
    params
        .iter()
        .fold(sqlx::query(sql_text).persistent(false), bind)
}

fn column(row: &PgRow, i: usize) -> Result<Value, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let col = &row.columns()[i];
    let get = |e: sqlx::Error| sql_error("the database", &e);
    Ok(match col.type_info().name() {
        "BOOL" => Value::Boolean(row.try_get(i).map_err(get)?),
        "INT2" => Value::Int(i64::from(row.try_get::<i16, _>(i).map_err(get)?)),
        "INT4" => Value::Int(i64::from(row.try_get::<i32, _>(i).map_err(get)?)),
        "INT8" => Value::Int(row.try_get(i).map_err(get)?),
        "OID" => Value::Int(i64::from(
            row.try_get::<sqlx::postgres::types::Oid, _>(i)
                .map_err(get)?
                .0,
        )),
        "FLOAT4" => Value::Float(f64::from(row.try_get::<f32, _>(i).map_err(get)?)),
        "FLOAT8" => Value::Float(row.try_get(i).map_err(get)?),
        "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" | "CHAR" | "UNKNOWN" => {
            Value::Text(row.try_get(i).map_err(get)?)
        }
        "BYTEA" => Value::Bytes(row.try_get(i).map_err(get)?),
        other => {
            return Err(format!(
                "column `{}` has type {other}, which the host does not convert; cast it to text",
                col.name()
            ));
        }
    })
}

/// A pooled connection that is closed instead of returned to the pool unless its query
/// read its result to the end: the pool would otherwise drain an abandoned result (all of
/// it) before reusing the connection. Closing it also makes the server stop sending.
struct Checkout {
    conn: PoolConnection<Postgres>,
    complete: bool,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.complete {
            self.conn.close_on_drop();
        }
    }
}

/// Reads rows as they arrive, stopping at the first row or byte past the caps.
async fn collect_rows(
    connection: &str,
    mut rows: BoxStream<'_, Result<PgRow, sqlx::Error>>,
) -> Result<Rows, HostFault> {
    let mut columns = None;
    let mut total = 0usize;
    let mut out = Vec::new();
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| HostFault::Upstream(sql_error(connection, &e)))?
    {
        if out.len() == MAX_ROWS {
            return Err(HostFault::Invalid(format!(
                "the query returned more than the {MAX_ROWS} rows allowed"
            )));
        }
        if columns.is_none() {
            columns = Some(row.columns().iter().map(|c| c.name().to_owned()).collect());
        }
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let v = column(&row, i).map_err(HostFault::Invalid)?;
            total = total.saturating_add(value_len(&v));
            if total > MAX_DATA_BYTES {
                return Err(HostFault::Invalid(format!(
                    "the result is more than the {MAX_DATA_BYTES} bytes allowed"
                )));
            }
            values.push(v);
        }
        out.push(values);
    }
    Ok(Rows {
        columns: columns.unwrap_or_default(),
        rows: out,
    })
}

/// Runs a query on a connection of `pool`, streaming its rows under the caps.
async fn query_capped(
    pool: sqlx::PgPool,
    connection: &str,
    sql_text: &str,
    params: &[Value],
) -> Result<Rows, HostFault> {
    let conn = pool
        .acquire()
        .await
        .map_err(|e| HostFault::Upstream(sql_error(connection, &e)))?;
    let mut checkout = Checkout {
        conn,
        complete: false,
    };
    let conn: &mut sqlx::PgConnection = &mut checkout.conn;
    let rows = if params.is_empty() {
        collect_rows(connection, sqlx::raw_sql(sql_text).fetch(conn)).await
    } else {
        collect_rows(connection, prepared(sql_text, params).fetch(conn)).await
    };
    checkout.complete = rows.is_ok();
    rows
}

impl HostState {
    /// The pool of `connection`, or a recorded denial.
    fn pool(&mut self, connection: &str) -> Result<sqlx::PgPool, HostFault> {
        let found = self.scope.connections.postgres(connection);
        found.map_err(|m| self.deny(m))
    }
}

fn run_transaction(
    pool: sqlx::PgPool,
    statements: Vec<Statement>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u64>, sqlx::Error>> + Send>> {
    Box::pin(async move {
        let mut tx = pool.begin().await?;
        let mut affected = Vec::with_capacity(statements.len());
        for s in &statements {
            let conn: &mut sqlx::PgConnection = &mut tx;
            let done = if s.params.is_empty() {
                sqlx::Executor::execute(conn, sqlx::raw_sql(&s.sql)).await?
            } else {
                sqlx::Executor::execute(conn, prepared(&s.sql, &s.params)).await?
            };
            affected.push(done.rows_affected());
        }
        tx.commit().await?;
        Ok(affected)
    })
}

async fn timed<T>(
    limit: std::time::Duration,
    connection: &str,
    fut: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, HostFault> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(HostFault::Upstream(sql_error(connection, &e))),
        Err(_) => Err(HostFault::Upstream(format!(
            "the statement did not finish within {limit:?}"
        ))),
    }
}

impl sql::Host for HostState {
    async fn query(
        &mut self,
        connection: String,
        sql_text: String,
        params: Vec<Value>,
    ) -> Result<Rows, HostFault> {
        let pool = self.pool(&connection)?;
        check_statement(&sql_text, &params)?;
        let limit = self.host_timeout();
        tokio::time::timeout(limit, query_capped(pool, &connection, &sql_text, &params))
            .await
            .unwrap_or_else(|_| {
                Err(HostFault::Upstream(format!(
                    "the statement did not finish within {limit:?}"
                )))
            })
    }

    async fn execute(
        &mut self,
        connection: String,
        sql_text: String,
        params: Vec<Value>,
    ) -> Result<u64, HostFault> {
        let pool = self.pool(&connection)?;
        check_statement(&sql_text, &params)?;
        let done = if params.is_empty() {
            timed(
                self.host_timeout(),
                &connection,
                sqlx::raw_sql(&sql_text).execute(&pool),
            )
            .await
        } else {
            timed(
                self.host_timeout(),
                &connection,
                prepared(&sql_text, &params).execute(&pool),
            )
            .await
        };
        done.map(|d| d.rows_affected())
    }

    async fn transaction(
        &mut self,
        connection: String,
        statements: Vec<Statement>,
    ) -> Result<Vec<u64>, HostFault> {
        let pool = self.pool(&connection)?;
        if statements.len() > MAX_STATEMENTS {
            return Err(HostFault::Invalid(format!(
                "{} statements, more than the {MAX_STATEMENTS} allowed",
                statements.len()
            )));
        }
        for s in &statements {
            check_statement(&s.sql, &s.params)?;
        }
        timed(
            self.host_timeout(),
            &connection,
            run_transaction(pool, statements),
        )
        .await
    }

    async fn rotate_root(&mut self, connection: String) -> Result<(), HostFault> {
        self.pool(&connection)?;
        let scope = self.scope.clone();
        super::rotate::rotate_root(&scope, &connection).await
    }
}
