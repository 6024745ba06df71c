package pgfuse

// CodeValue is the SQLSTATE gormaudit_refuse raises for a value that cannot
// be recorded; the error's column and detail name the column and the reason.
const CodeValue = "GAV01"

// The SQLSTATE codes gormaudit_refuse_change raises, in class "GA", this
// module's own. For CodeKeyChange the error's detail and hint are the old
// and new primary keys; for CodeAccountMove the detail is the record's key
// and the hint the old and new accounts, separated by a space.
const (
	CodeAccountMove = "GA001"
	CodeKeyChange   = "GA002"
)

// RefuseFunction creates gormaudit_refuse(column, reason), which a
// statement calls to refuse a value the encoder would refuse. It raises
// [CodeValue] naming the column and the reason.
const RefuseFunction = `CREATE OR REPLACE FUNCTION gormaudit_refuse(p_column text, p_reason text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	RAISE EXCEPTION 'audit: value of % cannot be recorded: %', p_column, p_reason
		USING ERRCODE = '` + CodeValue + `', COLUMN = p_column, DETAIL = p_reason;
END
$$`

// RefuseChangeFunction creates gormaudit_refuse_change(code, message,
// detail, hint), which an update statement calls to refuse a change it
// cannot record, such as a record moving to another account. It raises an
// error with the given SQLSTATE code, message, detail and hint.
const RefuseChangeFunction = `CREATE OR REPLACE FUNCTION gormaudit_refuse_change(p_code text, p_message text, p_detail text, p_hint text) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = p_code, MESSAGE = p_message, DETAIL = p_detail, HINT = p_hint;
END
$$`
