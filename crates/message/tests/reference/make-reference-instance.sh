#!/bin/sh
# Sets up the private Debian Postfix 3.7.11 whose delivered messages gave the expected headers in
# crates/message's tests (as root; see /work/shared/POSTFIX-REFERENCE.md) and prints its
# directory. Ports (127.0.0.1 only):
#   2725  default: the client 127.0.0.1 matches local_header_rewrite_clients (inet interface)
#   2726  local_header_rewrite_clients empty: a remote client, nothing is added
#   2727  remote client; its cleanup has remote_header_rewrite_domain = rw.example.test
#   2728  remote client; its cleanup has always_add_missing_headers = yes and
#         undisclosed_recipients_header = To: undisclosed-recipients:;
#   2730  local client; its cleanup has header_size_limit = 1000, hopcount_limit = 3
#   2731  local client; the cleanup of 2728
#   2729  SASL AUTH (carol/secret) and STARTTLS with the snakeoil certificate
# Then: postfix -c $DIR start; python3 send.py (25 SMTP cases); sendmail -C $DIR with -F
# "John Q. Public", -F "John   Smith", no -F, -F 'Odd "q" (c)'; the mailbox is $DIR/spool/alice
# (delivered.mbox; the last two messages were sent with TZ=America/St_Johns).
set -e
DIR=$(mktemp -d /tmp/pfref.d2m.XXXXXX); chmod 0755 $DIR
mkdir $DIR/queue $DIR/data $DIR/spool
chown postfix $DIR/data; chmod 0700 $DIR/data; chmod 1777 $DIR/spool
cat > $DIR/main.cf <<EOT
queue_directory = $DIR/queue
data_directory = $DIR/data
mail_spool_directory = $DIR/spool
maillog_file = $DIR/maillog
maillog_file_prefixes = $DIR
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.example.test
mydomain = example.test
mydestination = mx.example.test, localhost
mynetworks = 127.0.0.1/32
compatibility_level = 3.6
alias_maps = hash:$DIR/aliases
alias_database = hash:$DIR/aliases
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
smtpd_timeout = 10s
cyrus_sasl_config_path = $DIR/sasl
smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem
smtpd_tls_key_file = /etc/ssl/private/ssl-cert-snakeoil.key
EOT
mkdir $DIR/sasl
printf 'pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: %s/sasldb2\n' $DIR > $DIR/sasl/smtpd.conf
echo secret | saslpasswd2 -p -f $DIR/sasldb2 -c -u mx.example.test carol; chown postfix $DIR/sasldb2
sed -e 's/^\(smtp *inet.*\)$/#\1/' /etc/postfix/master.cf | awk '
/^#/ || /^[ \t]/ || NF==0 {print; next}
{ if ($5=="y" || $5=="-") $5="n"; print }' > $DIR/master.cf
cat >> $DIR/master.cf <<EOT
127.0.0.1:2725 inet n - n - - smtpd
127.0.0.1:2726 inet n - n - - smtpd -o local_header_rewrite_clients=
127.0.0.1:2727 inet n - n - - smtpd -o local_header_rewrite_clients= -o cleanup_service_name=cleanup-rw
127.0.0.1:2728 inet n - n - - smtpd -o local_header_rewrite_clients= -o cleanup_service_name=cleanup-aa
127.0.0.1:2730 inet n - n - - smtpd -o cleanup_service_name=cleanup-small
127.0.0.1:2731 inet n - n - - smtpd -o cleanup_service_name=cleanup-aa
cleanup-rw unix n - n - 0 cleanup -o remote_header_rewrite_domain=rw.example.test
cleanup-aa unix n - n - 0 cleanup -o always_add_missing_headers=yes -o { undisclosed_recipients_header = To: undisclosed-recipients:; }
cleanup-small unix n - n - 0 cleanup -o header_size_limit=1000 -o hopcount_limit=3
127.0.0.1:2729 inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_tls_security_level=may -o local_header_rewrite_clients=
EOT
printf 'postmaster: root\nbob: alice\n"john smith": alice\n' > $DIR/aliases
postalias -c $DIR hash:$DIR/aliases
echo $DIR
