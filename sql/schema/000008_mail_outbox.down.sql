DROP TABLE IF EXISTS mail_outbox;
DROP FUNCTION IF EXISTS notify_mail_outbox();
